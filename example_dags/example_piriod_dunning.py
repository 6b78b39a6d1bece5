"""
Every morning, find the subscriptions whose payment needs attention and the people to tell.

``PiriodReadOperator`` lists the subscriptions in status ``needs_attention``; a second one reads
the contacts of their customers in one filtered list (``customer__in``). ``plan_notifications``
pairs them: each subscription gets its customer's collections contacts (those with
``collections: true``), else its invoicing contacts, else any contact with an email. The result is
what a notification task needs; ``notify`` stands in for the email or chat message. A day with
nothing to chase skips the rest of the run instead of reading every contact.

    airflow dags test example_piriod_dunning
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.exceptions import AirflowSkipException

from airflow_provider_piriod.operators.piriod import PiriodReadOperator


def ref_id(value: Any) -> Any:
    """A related object's id, whether Piriod sent the id or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def recipients(contacts: list[dict]) -> list[dict]:
    """Collections contacts first, then invoicing ones, then anyone; only those with an email."""
    reachable = [contact for contact in contacts if contact.get("email")]
    chosen = [c for c in reachable if c.get("collections")] or [c for c in reachable if c.get("invoicing")] or reachable
    return [{"name": contact.get("name"), "email": contact["email"]} for contact in chosen]


with DAG(
    dag_id="example_piriod_dunning",
    schedule="0 8 * * 1-5",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "piriod"],
) as dag:
    subscriptions = PiriodReadOperator(
        task_id="subscriptions_needing_attention",
        resource="subscriptions",
        filters={"status": "needs_attention"},
    )

    @task
    def contact_filters(subscriptions: list[dict]) -> dict:
        """The filter for their customers' contacts; nothing to chase skips the rest of the run."""
        customers = sorted({ref_id(subscription["customer"]) for subscription in subscriptions})
        if not customers:
            raise AirflowSkipException("No subscription needs attention today")
        return {"customer__in": customers}

    contacts = PiriodReadOperator(
        task_id="their_contacts", resource="contacts", filters=contact_filters(subscriptions.output)
    )

    @task
    def plan_notifications(subscriptions: list[dict], contacts: list[dict]) -> list[dict]:
        """One notification per subscription: who to tell, about what."""
        by_customer: dict[Any, list[dict]] = defaultdict(list)
        for contact in contacts:
            by_customer[ref_id(contact.get("customer"))].append(contact)
        return [
            {
                "subscription": subscription["id"],
                "customer": ref_id(subscription["customer"]),
                "next_billing": subscription.get("next_billing"),
                "recipients": recipients(by_customer[ref_id(subscription["customer"])]),
            }
            for subscription in subscriptions
        ]

    @task
    def notify(notifications: list[dict]) -> int:
        """Stand-in for sending: print each message; returns how many could be sent."""
        sent = 0
        for note in notifications:
            if not note["recipients"]:
                print(f"{note['subscription']}: no contact with an email for customer {note['customer']}")
                continue
            emails = ", ".join(person["email"] for person in note["recipients"])
            print(f"To {emails}: the payment of subscription {note['subscription']} needs attention")
            sent += 1
        return sent

    notify(plan_notifications(subscriptions.output, contacts.output))
