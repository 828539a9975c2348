"""The one DDL renderer: each object's CREATE with its session settings, and the scripts of whole schemas.

Above the model (it renders model objects), below everything that sends DDL: restore, rollback, scripts."""
