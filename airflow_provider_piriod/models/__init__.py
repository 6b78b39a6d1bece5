"""Typed, read-only views of Piriod objects.

Models are lenient on read: unknown fields are kept, fields may be missing or null, and types the two
generations of Piriod docs disagree on are accepted both ways (``state.id`` int or str). Money is an exact
:class:`~decimal.Decimal`, date fields are :class:`~datetime.date`, timestamps accept every documented shape.
Each model also keeps the JSON it was built from, and ``to_json()`` gives exactly that back (same keys,
numbers stay numbers, nothing added): that is what operators push to XCom.
"""

from airflow_provider_piriod.models.base import Money, PiriodModel, PiriodObject, Ref, TimestampOrFlag
from airflow_provider_piriod.models.catalog import Plan, Product
from airflow_provider_piriod.models.customers import Aggregations, Contact, Country, Customer, CustomerPage, State
from airflow_provider_piriod.models.invoices import BillingDocument, CreditNote, Invoice, InvoiceLine
from airflow_provider_piriod.models.payments import Payment
from airflow_provider_piriod.models.subscriptions import Subscription

__all__ = [
    "Aggregations",
    "BillingDocument",
    "Contact",
    "Country",
    "CreditNote",
    "Customer",
    "CustomerPage",
    "Invoice",
    "InvoiceLine",
    "Money",
    "Payment",
    "PiriodModel",
    "PiriodObject",
    "Plan",
    "Product",
    "Ref",
    "State",
    "Subscription",
    "TimestampOrFlag",
]
