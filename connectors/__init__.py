"""The doors onto the engine: the DB-API module, the shell, and the readers of media folders."""
