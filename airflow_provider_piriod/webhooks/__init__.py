"""Piriod webhooks received in Airflow's API server: signature, delivery handling, asset events (Airflow 3)."""
