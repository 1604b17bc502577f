"""Where a bundle goes: a directory (for Argo CD, Flux or any GitOps tool) or ``kubectl``.

Both keep the last good revision when a new one fails: the directory only changes by one
atomic rename, and kubectl applies nothing unless the server-side dry run of the whole bundle
passed first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.bundle import Bundle, BundleError

# Directory layout (the atomic writer Kubernetes uses for ConfigMap volumes):
#   DIR/..data          -> ..r<number>-<digest12>   (swapped by one rename)
#   DIR/..r3-0123abcd…  the revision's files
#   DIR/revision        -> ..data/revision          (stable links for readers)
#   DIR/<Kind>          -> ..data/<Kind>            containing <namespace>/<name>.yaml
DATA_LINK = "..data"
REVISION_FILE = "revision"
_REVISION_DIR = re.compile(r"^\.\.r\d+-[0-9a-f]+$")


def read_revision(directory: Path) -> tuple[int, str] | None:
    """(number, digest) of the revision a directory holds, or None."""
    try:
        text = (directory / REVISION_FILE).read_text()
    except OSError:
        return None
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        return int(values["revision"]), values["digest"]
    except (KeyError, ValueError):
        return None


def write_tree(root: Path, bundle: Bundle) -> None:
    """One file per resource, ``<Kind>/<namespace>/<name>.yaml``, and the ``revision`` file."""
    for resource in bundle.resources:
        path = root / resource.relative_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w") as out:
                out.write(resource.to_yaml())
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            message = f"cannot write {path}: {exc.strerror}"
            raise BundleError(message, resource=resource.key) from exc
    text = f"revision: {bundle.revision}\ndigest: {bundle.digest}\n"
    if bundle.cluster:
        text += f"cluster: {bundle.cluster}\n"
    try:
        (root / REVISION_FILE).write_text(text)
    except OSError as exc:
        raise BundleError(f"cannot write {root / REVISION_FILE}: {exc.strerror}") from exc


class DirectoryApplier:
    """Writes each revision into ``directory``, swapping the whole set of files at once."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def applied(self) -> tuple[int, str] | None:
        return read_revision(self.directory)

    def describe(self) -> str:
        return f"dir={self.directory}"

    def apply(self, bundle: Bundle, previous: Bundle | None = None) -> str:
        top = self.directory
        try:
            top.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="..tmp-", dir=top))
        except OSError as exc:
            raise BundleError(f"directory not writable: {top}: {exc.strerror}") from exc
        try:
            write_tree(staging, bundle)
            entries = sorted(p.name for p in staging.iterdir())
            self._check_no_foreign(entries)
            final = top / f"..r{bundle.revision}-{bundle.digest[:12]}"
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            link = top / "..data_tmp"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(final.name)
            os.replace(link, top / DATA_LINK)  # the swap: readers see all old or all new
            self._relink(entries)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(f"cannot write {top}: {exc.strerror or exc}") from exc
        except BundleError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._remove_old(keep=final.name)
        return f"{len(bundle.resources)} files in {top}"

    def _check_no_foreign(self, entries: list[str]) -> None:
        for name in entries:
            path = self.directory / name
            if path.exists() and not path.is_symlink():
                raise BundleError(f"refusing to replace {path}: it was not written by the agent")

    def _relink(self, entries: list[str]) -> None:
        top = self.directory
        wanted = set(entries)
        for name in entries:
            path = top / name
            if not path.is_symlink():
                path.symlink_to(f"{DATA_LINK}/{name}")
        for path in top.iterdir():
            if (
                path.is_symlink()
                and path.name not in wanted
                and os.readlink(path).startswith(DATA_LINK + "/")
            ):
                path.unlink()

    def _remove_old(self, *, keep: str) -> None:
        for path in self.directory.iterdir():
            is_leftover = path.name.startswith("..tmp-") or _REVISION_DIR.match(path.name)
            if is_leftover and path.name != keep and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)


_FILE_IN_ERROR = re.compile(r'"([^"]+\.yaml)"')


class KubectlApplier:
    """``kubectl apply --server-side``: a server-side dry run of the whole bundle, then the
    apply, then deletes what the previous revision had and this one has not. The last applied
    revision's files are kept in ``state_dir`` (written by a DirectoryApplier) so a restarted
    agent still knows what to prune."""

    FIELD_MANAGER = "canopy-agent"

    def __init__(self, *, state_dir: Path, context: str | None = None, kubectl: str = "kubectl"):
        self.record = DirectoryApplier(Path(state_dir))
        self.context = context
        self.kubectl = kubectl

    def applied(self) -> tuple[int, str] | None:
        return self.record.applied()

    def describe(self) -> str:
        return f"kubectl context={self.context or '(current)'} state={self.record.directory}"

    def _run(self, *args: str, root: Path | None = None) -> None:
        argv = [self.kubectl]
        if self.context:
            argv += ["--context", self.context]
        argv += list(args)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"kubectl could not run: {exc}") from exc
        if done.returncode != 0:
            error = (done.stderr or done.stdout).strip()[-2000:]
            raise BundleError(
                f"kubectl {args[0]} failed: {error}", resource=_failing_resource(error, root)
            )

    def apply(self, bundle: Bundle, previous: Bundle | None = None) -> str:
        with tempfile.TemporaryDirectory(prefix="canopy-agent-") as tmp:
            root = Path(tmp)
            write_tree(root, bundle)
            (root / REVISION_FILE).unlink()  # not a Kubernetes object
            apply = ["apply", "--server-side", f"--field-manager={self.FIELD_MANAGER}", "-R"]
            if bundle.resources:
                self._run(*apply, "--dry-run=server", "-f", str(root), root=root)
                self._run(*apply, "-f", str(root), root=root)
            current = {r.relative_path for r in bundle.resources}
            pruned = 0
            old = self.record.directory / DATA_LINK
            for path in sorted(old.glob("*/*/*.yaml")) if old.exists() else ():
                relative = str(path.relative_to(old))
                if relative not in current:
                    self._run("delete", "--ignore-not-found", "-f", str(path))
                    pruned += 1
        self.record.apply(bundle)
        return f"{len(bundle.resources)} applied, {pruned} pruned"


def _failing_resource(error: str, root: Path | None) -> str | None:
    """``kind/namespace/name`` of the first bundle file kubectl's error names."""
    if root is None:
        return None
    for match in _FILE_IN_ERROR.finditer(error):
        try:
            relative = Path(match.group(1)).relative_to(root)
        except ValueError:
            continue
        parts = relative.with_suffix("").parts
        if len(parts) == 3:
            return "/".join(parts)
    return None


def state_dir_default(url: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", url)[:100]
    return base / "canopy-agent" / safe
