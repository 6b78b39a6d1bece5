"""Deterministic, realistic Piriod customers for the emulator (Chile, Mexico, Colombia).

The same ``seed`` always gives the same customers, ids and timestamps, so tests and benchmarks
can name records without reading them first. Every record follows the published Customer schema.
"""

from __future__ import annotations

import random
import string
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

COUNTRIES: dict[str, dict[str, Any]] = {
    "CL": {"id": "CL", "name": "Chile", "code": "+56", "has_regulation": True, "currencies": ["CLP", "USD"]},
    "MX": {"id": "MX", "name": "México", "code": "+52", "has_regulation": True, "currencies": ["MXN", "USD"]},
    "CO": {"id": "CO", "name": "Colombia", "code": "+57", "has_regulation": True, "currencies": ["COP", "USD"]},
}

# (state id, state name, cities, postal code prefix)
STATES: dict[str, list[tuple[int, str, list[str], str]]] = {
    "CL": [
        (13, "Región Metropolitana de Santiago", ["Santiago", "Providencia", "Las Condes", "Ñuñoa"], "75"),
        (5, "Valparaíso", ["Valparaíso", "Viña del Mar", "Quilpué"], "25"),
        (8, "Biobío", ["Concepción", "Talcahuano", "Los Ángeles"], "40"),
        (2, "Antofagasta", ["Antofagasta", "Calama"], "12"),
        (9, "La Araucanía", ["Temuco", "Villarrica"], "48"),
    ],
    "MX": [
        (109, "Ciudad de México", ["Cuauhtémoc", "Miguel Hidalgo", "Coyoacán", "Benito Juárez"], "06"),
        (114, "Jalisco", ["Guadalajara", "Zapopan", "Tlaquepaque"], "44"),
        (119, "Nuevo León", ["Monterrey", "San Pedro Garza García"], "64"),
        (121, "Puebla", ["Puebla", "Cholula"], "72"),
    ],
    "CO": [
        (211, "Bogotá D.C.", ["Bogotá"], "11"),
        (205, "Antioquia", ["Medellín", "Envigado", "Rionegro"], "05"),
        (276, "Valle del Cauca", ["Cali", "Palmira"], "76"),
        (208, "Atlántico", ["Barranquilla", "Soledad"], "08"),
    ],
}

LEGAL_FORMS = {
    "CL": ["SpA", "Ltda.", "S.A.", "EIRL"],
    "MX": ["S.A. de C.V.", "S. de R.L. de C.V.", "S.A.P.I. de C.V."],
    "CO": ["S.A.S.", "Ltda.", "S.A."],
}
TLD = {"CL": "cl", "MX": "com.mx", "CO": "com.co"}
CURRENCY = {"CL": "CLP", "MX": "MXN", "CO": "COP"}
STREETS = [
    "Av. Providencia",
    "Calle Bandera",
    "Av. Reforma",
    "Calle 93",
    "Carrera 7",
    "Av. Insurgentes",
    "Av. Apoquindo",
    "Calle Morelos",
    "Av. El Poblado",
    "Calle Merced",
    "Av. Libertador",
    "Calle Hidalgo",
]
ROOTS = [
    "Andes",
    "Pacífico",
    "Cordillera",
    "Austral",
    "Maipo",
    "Atacama",
    "Sierra Madre",
    "Azteca",
    "Caribe",
    "Magdalena",
    "Llanos",
    "Araucaria",
    "Quetzal",
    "Cóndor",
    "Volcán",
    "Altiplano",
    "Laguna",
    "Nevado",
]
TRADES = [
    "Logística",
    "Alimentos",
    "Tecnología",
    "Servicios",
    "Consultores",
    "Comercial",
    "Distribuidora",
    "Agrícola",
    "Constructora",
    "Transportes",
    "Inversiones",
    "Software",
    "Importadora",
    "Ingeniería",
]
FIRST_NAMES = [
    "Camila",
    "Sofía",
    "Valentina",
    "Mateo",
    "Benjamín",
    "Joaquín",
    "Isidora",
    "Tomás",
    "Lucía",
    "Diego",
    "Fernanda",
    "Javier",
    "Mariana",
    "Santiago",
    "Daniela",
    "Andrés",
    "Gabriela",
    "Ximena",
]
LAST_NAMES = [
    "González",
    "Muñoz",
    "Rojas",
    "Hernández",
    "García",
    "Martínez",
    "López",
    "Pérez",
    "Rodríguez",
    "Castillo",
    "Vargas",
    "Ramírez",
    "Torres",
    "Flores",
    "Morales",
    "Jiménez",
    "Silva",
    "Reyes",
]
MANAGERS = ["María Fuentes", "Pedro Soto", "Ana Cárdenas", "Luis Ortega", None]
SEGMENTS = ["smb", "mid_market", "enterprise"]
CHANNELS = ["web", "sales", "partner"]
STATUSES = (["active"] * 78) + (["pending"] * 14) + (["archived"] * 8)
ALPHABET = string.ascii_letters + string.digits

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPAN_SECONDS = int((datetime(2026, 6, 1, tzinfo=timezone.utc) - EPOCH).total_seconds())


def make_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(ALPHABET) for _ in range(22))


def isoformat(moment: datetime) -> str:
    """Piriod's timestamp form: UTC with microseconds and a ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rut(rng: random.Random) -> str:
    """A Chilean company RUT with a valid check digit (mod 11)."""
    number = rng.randint(76_000_000, 77_999_999)
    total, factor = 0, 2
    for digit in reversed(str(number)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    check = 11 - total % 11
    return f"{number}-{ {10: 'K', 11: '0'}.get(check, str(check)) }".replace(" ", "")


def rfc(rng: random.Random, name: str, created: datetime) -> str:
    """A Mexican company RFC: three letters, incorporation date, three-character homoclave."""
    letters = "".join(c for c in _ascii(name).upper() if c.isalpha())[:3].ljust(3, "X")
    homoclave = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(3))
    return f"{letters}{(created - timedelta(days=rng.randint(400, 9000))):%y%m%d}{homoclave}"


def nit(rng: random.Random) -> str:
    """A Colombian NIT with the DIAN check digit."""
    number = str(rng.randint(800_000_000, 901_999_999))
    weights = [3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71]
    total = sum(int(d) * w for d, w in zip(reversed(number), weights, strict=False))
    remainder = total % 11
    return f"{number}-{remainder if remainder < 2 else 11 - remainder}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _slug(text: str) -> str:
    return "".join(c for c in _ascii(text).lower() if c.isalnum())


def _phone(rng: random.Random, country: str, with_prefix: bool) -> str:
    if country == "CL":
        local = f"9 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    elif country == "MX":
        local = f"55 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    else:
        local = f"3{rng.randint(10, 50)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    return f"{COUNTRIES[country]['code']} {local}" if with_prefix else local.replace(" ", "")


def _money(rng: random.Random, currency: str, low: float, high: float) -> float | int:
    value = rng.uniform(low, high)
    return int(round(value, -2)) if currency == "CLP" else round(value, 2)


def _contact(rng: random.Random, customer_id: str, domain: str, country: str, created: datetime) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    contact_created = created + timedelta(minutes=rng.randint(1, 600))
    return {
        "id": make_id(rng, "con_"),
        "customer": customer_id,
        "orgunit": None,
        "name": f"{first} {last}",
        "email": f"{_slug(first)}.{_slug(last)}@{domain}",
        "phone": _phone(rng, country, with_prefix=False) if rng.random() < 0.7 else None,
        "invoicing": rng.random() < 0.8,
        "collections": rng.random() < 0.6,
        "created": isoformat(contact_created),
        "updated": isoformat(contact_created + timedelta(days=rng.randint(0, 90))),
    }


def make_customer(rng: random.Random, *, test_mode: bool = False, created: datetime | None = None) -> dict[str, Any]:
    """One customer as Piriod's API returns it."""
    country = rng.choice(("CL", "CL", "MX", "CO"))  # most Piriod accounts are Chilean
    state_id, state_name, cities, zip_prefix = rng.choice(STATES[country])
    root, trade = rng.choice(ROOTS), rng.choice(TRADES)
    name = f"{trade} {root} {rng.choice(LEGAL_FORMS[country])}"
    domain = f"{_slug(trade)}{_slug(root)}{rng.randint(1, 999)}.{TLD[country]}"
    if created is None:
        created = EPOCH + timedelta(seconds=rng.randint(0, SPAN_SECONDS), microseconds=rng.randint(0, 999_999))
    updated = created + timedelta(days=rng.randint(0, 120), seconds=rng.randint(0, 86_399))
    customer_id = make_id(rng, "cus_")
    currency = CURRENCY[country] if rng.random() < 0.9 else "USD"
    sales = _money(rng, currency, 0, 250_000_000 if currency == "CLP" else 900_000)
    tax_id = {"CL": rut, "CO": nit}.get(country, lambda r: rfc(r, root, created))(rng)
    return {
        "id": customer_id,
        "name": name,
        "address": f"{rng.choice(STREETS)} {rng.randint(10, 9999)}, {rng.choice(cities)}",
        "country": dict(COUNTRIES[country], currencies=list(COUNTRIES[country]["currencies"])),
        "state": {"id": state_id, "name": state_name, "country": country},
        "currency": currency,
        "email": f"facturacion@{domain}" if rng.random() < 0.95 else None,
        "phone": _phone(rng, country, with_prefix=True) if rng.random() < 0.85 else None,
        "website": f"https://www.{domain}" if rng.random() < 0.6 else None,
        "zip_code": f"{zip_prefix}{rng.randint(1000, 9999)}" if rng.random() < 0.7 else None,
        "manager": rng.choice(MANAGERS),
        "reference": f"ERP-{rng.randint(10000, 99999)}" if rng.random() < 0.5 else None,
        "tax_id": tax_id,
        "tax_settings": _tax_settings(rng, country),
        "metadata": {
            "segment": rng.choice(SEGMENTS),
            "channel": rng.choice(CHANNELS),
            "crm_id": f"CRM-{rng.randint(1, 999999):06d}",
        }
        if rng.random() < 0.85
        else {},
        "send_invoices": rng.random() < 0.9,
        "send_collections": rng.random() < 0.75,
        "send_vouchers": rng.random() < 0.6,
        "status": rng.choice(STATUSES),
        "contacts": [_contact(rng, customer_id, domain, country, created) for _ in range(rng.choice((0, 1, 1, 2, 3)))],
        "sources": [make_id(rng, "src_") for _ in range(rng.choice((0, 0, 1, 2)))],
        "aggregations": {
            "sales": sales,
            "sales_current_period": _money(rng, currency, 0, sales * 0.2) if sales else 0,
            "balance": _money(rng, currency, 0, sales * 0.1) if sales else 0,
        },
        "test_mode": test_mode,
        "created": isoformat(created),
        "updated": isoformat(updated),
    }


def _tax_settings(rng: random.Random, country: str) -> dict[str, Any]:
    if country == "CL":
        return {
            "activity": rng.choice(["Servicios informáticos", "Comercio al por mayor", "Transporte de carga"]),
            "dte_type": rng.choice([33, 34]),
        }
    if country == "MX":
        return {"regime": rng.choice(["601", "603", "626"]), "cfdi_use": rng.choice(["G01", "G03", "S01"])}
    return {"person_type": "juridica", "fiscal_responsibility": rng.choice(["O-13", "O-15", "R-99-PN"])}


def make_customers(count: int, seed: int, *, test_mode_share: float = 0.1) -> list[dict[str, Any]]:
    """``count`` customers for ``seed``; about ``test_mode_share`` of them are test-mode records."""
    rng = random.Random(seed)
    return [make_customer(rng, test_mode=rng.random() < test_mode_share) for _ in range(count)]


def make_contact(rng: random.Random, customer: dict[str, Any], created: datetime) -> dict[str, Any]:
    """A new contact of ``customer``, shaped like the contacts embedded in customers."""
    country = customer.get("country")
    country_id = country.get("id") if isinstance(country, dict) else country
    domain = str(customer.get("email") or "").partition("@")[2] or f"{_slug(customer.get('name') or 'cliente')}.cl"
    return _contact(rng, customer["id"], domain, country_id if country_id in COUNTRIES else "CL", created)
