"""Publishing work for the workers: the Celery app's configuration, and the API's own publishers."""
