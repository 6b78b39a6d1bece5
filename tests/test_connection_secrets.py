"""A secret typed into the API URL field (user info, query, fragment) never reaches the error that refuses it."""

from __future__ import annotations

import pytest

from airflow_provider_piriod.compat import Connection
from airflow_provider_piriod.connection import settings_from_connection
from airflow_provider_piriod.exceptions import PiriodConfigError

SECRET = "sk_live_SECRET_IN_URL"


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        (f"https://acc_1:{SECRET}@api.piriod.com", "https://***@api.piriod.com"),
        (f"https://{SECRET}@api.piriod.com", "https://***@api.piriod.com"),
        (f"https://api.piriod.com/?token={SECRET}", "https://api.piriod.com?***"),
        (f"https://api.piriod.com/#{SECRET}", "https://api.piriod.com#***"),
    ],
)
def test_a_secret_in_the_api_url_is_masked_in_the_error(host, shown):
    """The error names the scheme and host, with user info, query and fragment shown as ***."""
    connection = Connection(conn_id="c", conn_type="piriod", host=host, login="acc_1", password="pw")
    with pytest.raises(PiriodConfigError, match="host must be a plain URL") as caught:
        settings_from_connection(connection)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert repr(shown) in str(caught.value)
