"""An authentic delivery as an asset event on ``piriod://<conn id>/<resource>``, once per event and object.

Runs in the API server, which has the metadata database: the event is recorded the way Airflow's own
``POST /api/v2/assets/events`` records one, so DAGs scheduled on the asset run. Piriod retries a
delivery it thinks failed; a delivery of the same event and object id within ``DEDUPE_SECONDS`` of an
earlier one is not recorded again (checked against the asset's recent events, so it holds across API
server workers and restarts; two copies arriving in the same instant on two workers may both pass).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_piriod.events import webhook_extra
from airflow_provider_piriod.lineage_uri import default_outlet_uri
from airflow_provider_piriod.resources import Resource

DEDUPE_SECONDS = 600.0
RECORDED, DUPLICATE, NO_ASSET = "recorded", "duplicate", "no DAG is scheduled on it"


def record_delivery(conn_id: str, resource: Resource, event: str, object_id: str) -> str:
    """Record the delivery's asset event on the active asset of that URI (Airflow keeps one active asset per
    URI; older ones under other names are left alone); what happened: RECORDED, DUPLICATE or NO_ASSET."""
    from sqlalchemy import select

    from airflow_provider_piriod.compat import AssetActive, AssetEvent, AssetModel, asset_manager, create_session

    uri = default_outlet_uri(conn_id, resource)
    extra = webhook_extra(event, object_id, resource.name)
    since = datetime.now(timezone.utc) - timedelta(seconds=DEDUPE_SECONDS)
    outcome = NO_ASSET
    with create_session() as session:
        active = select(AssetModel).join(
            AssetActive, (AssetActive.name == AssetModel.name) & (AssetActive.uri == AssetModel.uri)
        )
        for asset in session.scalars(active.where(AssetModel.uri == uri)).all():
            recent = session.scalars(
                select(AssetEvent.extra).where(AssetEvent.asset_id == asset.id, AssetEvent.timestamp >= since)
            ).all()
            if any(_same_delivery(seen, extra) for seen in recent):
                outcome = DUPLICATE if outcome == NO_ASSET else outcome
                continue
            asset_manager.register_asset_change(asset=asset, extra=extra, session=session)
            outcome = RECORDED
    return outcome


def _same_delivery(seen: Any, extra: dict[str, str]) -> bool:
    return (
        isinstance(seen, dict) and seen.get("event") == extra["event"] and seen.get("object_id") == extra["object_id"]
    )
