#!/usr/bin/env python3
"""Runs a 2-process dqe job the way torchrun's agent does: the agent (this script) serves the
TCPStore and sets TORCHELASTIC_USE_AGENT_STORE, and every rank joins it as a client. (Debian's
torchrun 1.13 fails on Python 3.11 before it starts any worker, so this stands in for it.)
Usage: /usr/bin/python3 scripts/check/agent_store.py DQE ARGS...   (ARGS: a train or pretrain
command line; each rank gets the same)
"""
import datetime
import os
import socket
import subprocess
import sys

import torch.distributed as dist


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = dist.TCPStore("127.0.0.1", port, 3, True, datetime.timedelta(seconds=120), wait_for_workers=False)
    store.set("torchelastic/agent", "a key of the agent's own, which dqe must not read")
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True",
                   TORCHELASTIC_RUN_ID="agent-store-check", TORCHELASTIC_RESTART_COUNT="0", GLOO_SOCKET_IFNAME="lo")
        procs.append(subprocess.Popen(sys.argv[1:], env=env))
    codes = [p.wait() for p in procs]
    print(f"[agent_store] exit codes {codes}")
    sys.exit(max(codes))


if __name__ == "__main__":
    main()
