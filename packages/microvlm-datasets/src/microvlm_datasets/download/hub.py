"""Hugging Face hub repositories, fetched with ``huggingface_hub.snapshot_download``.

Files land under the dataset's folder (``local_dir``), not in the shared hub cache, so the data
root holds exactly what the builders read; ``snapshot_download`` itself skips files already
there (it keeps their metadata in ``<local_dir>/.cache/huggingface``) and resumes partial ones.
The token is the caller's, else ``HF_TOKEN``, else the usual ``huggingface-cli login`` (the
library's own lookup). ``HF_ENDPOINT`` is read at call time and passed on, so a test can point
it at a fake hub after ``huggingface_hub`` was imported (the library reads it at import).

A 401 or 403 (a gated repository whose terms were not accepted, or no token) and a missing
repository (withdrawn, or private) are :class:`~microvlm_datasets.download.http.DownloadError`
naming the repository's page, ``https://huggingface.co/datasets/<repo_id>``.

References: https://huggingface.co/docs/huggingface_hub/guides/download#download-an-entire-repository,
https://huggingface.co/docs/hub/datasets-gated (gated datasets: accept the terms on the page).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import attrs

from microvlm_datasets.download.http import DownloadError, destination
from microvlm_datasets.download.sources import HubFiles

log = logging.getLogger(__name__)


@attrs.frozen
class HubResult:
    """What :func:`fetch_hub` fetched for one repository."""

    path: Path  # the folder the files landed in
    repo_id: str
    files: tuple[str, ...]  # paths in the repo now present under ``path``


def fetch_hub(
    hub: HubFiles,
    folder: Path,
    *,
    token: str | None = None,
    progress: Callable[[str], None] | None = None,
    max_workers: int = 4,
) -> HubResult:
    """Download ``hub``'s files (its ``patterns``, at its ``revision``) into ``folder / hub.path``.

    :param token: a hub token; default ``HF_TOKEN``, then the stored login.
    :param progress: called with a one-line status when the transfer starts and ends.
    :param max_workers: parallel file downloads inside the repository.
    :raises DownloadError: 401/403 (terms not accepted or no token), a missing repo or revision,
        or the hub unreachable; the message names the repository's page.
    """
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    target = destination(folder, hub.path) if hub.path else folder
    target.mkdir(parents=True, exist_ok=True)
    page = hub.page  # https://huggingface.co/datasets/<repo_id>
    token = token or os.environ.get("HF_TOKEN") or None
    if progress is not None:
        progress(f"{hub.repo_id}: fetching from the hub")
    try:
        local = huggingface_hub.snapshot_download(
            hub.repo_id,
            repo_type=hub.repo_type,
            revision=hub.revision,
            allow_patterns=list(hub.patterns) or None,
            local_dir=target,
            token=token,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            max_workers=max_workers,
        )
    except hf_errors.GatedRepoError as exc:
        raise DownloadError(_access(hub, page, token, status=_status(exc))) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise DownloadError(f"{hub.repo_id}: no revision {hub.revision!r} on the hub; see {page}") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise DownloadError(
            f"{hub.repo_id}: repository not found on the hub (withdrawn, renamed, or private and needing a "
            f"token); see {page} - the catalogue took it from {hub.cite}"
        ) from exc
    except hf_errors.HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise DownloadError(_access(hub, page, token, status=status)) from exc
        raise DownloadError(f"{hub.repo_id}: the hub answered {status}: {exc}; see {page}") from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise DownloadError(f"{hub.repo_id}: the hub could not be reached ({exc}); see {page}") from exc
    files = tuple(
        sorted(
            p.relative_to(local).as_posix()
            for p in Path(local).rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(local).parts
        )
    )
    if progress is not None:
        progress(f"{hub.repo_id}: {len(files)} files")
    return HubResult(Path(local), hub.repo_id, files)


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _access(hub: HubFiles, page: str, token: str | None, *, status: int | None) -> str:
    how = (
        "no HF_TOKEN was set and no stored login worked: set HF_TOKEN or run `hf auth login`"
        if token is None
        else "the token was refused: accept the terms with the account the token belongs to"
    )
    return f"{hub.repo_id}: the hub answered {status}: accept the dataset's terms at {page} ({how})"


__all__ = ["HubResult", "fetch_hub"]
