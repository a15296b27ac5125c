"""Weights & Biases logging that never stops a run for want of a login or a network: online when a key is
configured and the server answers, else offline, saying why (``wandb sync`` uploads it later)."""

from __future__ import annotations

import logging
import netrc
import os
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, WandbLogger

log = logging.getLogger(__name__)

#: The W&B server unless ``WANDB_BASE_URL`` names another.
DEFAULT_WANDB_HOST = "https://api.wandb.ai"
#: Seconds to wait for the server before logging offline.
CONNECT_TIMEOUT_S = 3.0


def _reachable(host: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    url = urlparse(host)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_offline_reason() -> str | None:
    """Why this run cannot log online (``None``: it can). Only probes the server when a key exists."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun"):
        return "WANDB_MODE is offline"
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_WANDB_HOST)
    try:  # where `wandb login` stores the key
        logged_in = netrc.netrc().authenticators(urlparse(host).hostname or host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        logged_in = False
    if not (os.environ.get("WANDB_API_KEY") or logged_in):
        return "no W&B API key is configured (WANDB_API_KEY, or `wandb login`)"
    if not _reachable(host):
        return f"the W&B server {host} cannot be reached"
    return None


class FCNWandbLogger(WandbLogger):
    """``WandbLogger`` that goes offline by itself when it cannot log online, saying why once a process.

    Args:
        offline: ``None`` (default): decide from the environment (:func:`wandb_offline_reason`); ``True`` /
            ``False``: as ``WandbLogger``.
        log_model: as ``WandbLogger``; off (with a warning) when offline, where nothing can be uploaded.
        args, kwargs: as ``WandbLogger`` (``project``, ``name``, ``save_dir``, ``group``, ...).
    """

    #: The reasons for going offline already told (a staged run's stages log into one run).
    _told: ClassVar[set[str]] = set()

    def __init__(self, *args: Any, offline: bool | None = None, log_model: bool | str = False, **kwargs: Any):
        self.offline_reason = wandb_offline_reason() if offline is None else None
        offline = self.offline_reason is not None if offline is None else offline
        if offline and log_model:
            log.warning("W&B: the run is offline, so checkpoints are not uploaded (log_model off)")
            log_model = False
        super().__init__(*args, offline=offline, log_model=log_model, **kwargs)
        if self.offline_reason and not self._told:
            log.warning("W&B: %s; logging offline (W&B's sync command uploads it later)", self.offline_reason)
        if self.offline_reason:
            self._told.add(self.offline_reason)


def log_folder(logger: Logger) -> str | None:
    """Where ``logger`` writes on this machine: a TensorBoard / CSV logger's version folder, a W&B run's
    local folder (what ``wandb sync`` uploads; ``None`` before that run exists)."""
    if isinstance(logger, WandbLogger):
        run = getattr(sys.modules.get("wandb"), "run", None)  # wandb is imported once a run exists
        return str(Path(run.dir).parent) if run is not None and run.id == logger.version else None
    return getattr(logger, "log_dir", None) or logger.save_dir
