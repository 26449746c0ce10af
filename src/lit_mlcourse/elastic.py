"""lit under torchrun (torch's elastic agent): a restarted group that can connect, and errors torchrun can report."""

from __future__ import annotations

import os
from datetime import timedelta

# How long a restarted process waits for rank 0 to publish the new rendezvous port.
PORT_WAIT = timedelta(seconds=300)


def isolate_restarted_attempt() -> None:
    """Give a group that torchrun restarted (``--max-restarts``) a rendezvous store of its own.

    torchrun's agent keeps one store for every attempt and shares it with the processes (TORCHELASTIC_USE_AGENT_STORE),
    and torch >= 2.5 no longer puts each attempt's keys under their own prefix. A restarted rank 0 then reads the
    failed attempt's addresses and cannot connect ("Gloo connectFullMesh failed ... Connection refused"; pytorch
    issues #135712 and #167288: the workaround there is TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun itself).
    Here rank 0 publishes a free port in the agent's store under a key of this attempt, and every process of the
    attempt meets there in a store rank 0 hosts, as torch did before the shared store. Call before the process group
    is created; a first attempt, or a torchrun that does not share its store, is left as it is."""
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    if attempt < 1 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return
    from lightning.fabric.plugins.environments.lightning import find_free_network_port
    from torch.distributed import TCPStore

    agent_store = TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=PORT_WAIT
    )
    key = f"lit_mlcourse/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/attempt_{attempt}/master_port"
    if int(os.environ.get("RANK", "0")) == 0:
        agent_store.set(key, str(find_free_network_port()))
    os.environ["MASTER_PORT"] = agent_store.get(key).decode()
    os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"  # the store at MASTER_PORT is now rank 0's, not the agent's


def record_error(error: BaseException) -> None:
    """Under torchrun, the error and its traceback go to the worker's error file (what torch's ``@record`` does):
    torchrun then reports this process's own traceback as the root cause, not only "exit code 1"."""
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(error)
