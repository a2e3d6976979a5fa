"""A real ``prefect server start`` on 127.0.0.1 for the tests (shared with ``make demo``)."""

from devtools.services import Server, free_port, start_server, stop, wait_for

__all__ = ["Server", "free_port", "reset_client_services", "start_server", "stop", "wait_for"]


def reset_client_services(timeout_s: float = 10) -> None:
    """Stop this process's Prefect client services (events, logs, concurrency leases).

    They are process-wide and keep the API they first talked to: after a test module's
    server stops, they would go on sending to it (every event lost, every concurrency slot
    refused with ConnectError). Stopped, they start afresh on the current settings.
    """
    from prefect._internal.concurrency.services import _QueueServiceBase

    _QueueServiceBase.drain_all(timeout=timeout_s, at_exit=False)
