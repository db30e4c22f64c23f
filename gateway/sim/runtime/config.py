"""The kubelet's runtime settings (a cluster file's `sim.runtime` block) and what follows from them (pure).

runtime:
  imageCommands: {"python*": [python3], "*": [sh]}   # an image's CMD (glob on the name)
  imageEntrypoints: {"myapp*": [/app/run]}          # an image's ENTRYPOINT (none by default, as busybox, python)
  missingImages: ["ghcr.io/acme/private*"]          # images that fail with ErrImagePull
  isolation: true            # false: plain host processes, no namespaces (reported on each pod)
  rootDir: /tmp/podgate-sim  # where pod directories live (default: a fresh temp dir)
  restartBackoffSeconds: 10  # CrashLoopBackOff's first delay (doubles up to 300 s)
  imagePullBackoffSeconds: 1 # ErrImagePull -> ImagePullBackOff
  events: true               # false: the virtual runtime records no per-pod events (benchmarks)
  path: /usr/local/sbin:...  # PATH of containers that set none
  aliases: {python: python3} # commands a container lacks, linked in its own layer to one it has
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The simulator's own interpreter directory comes first: it plays the `python` that python images ship.
DEFAULT_PATH = f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_COMMANDS = (("python*", ("python3",)), ("*", ("sh",)))
DEFAULT_ALIASES = {"python": "python3"}  # as python images and Debian's python-is-python3 have it
MAX_BACKOFF = 300.0


class RuntimeConfigError(ValueError):
    """A `sim.runtime` block the kubelet cannot use; the message names the key."""


@dataclass(frozen=True)
class RuntimeConfig:
    image_commands: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_COMMANDS
    image_entrypoints: tuple[tuple[str, tuple[str, ...]], ...] = ()
    missing_images: tuple[str, ...] = ()
    isolation: bool = True
    root_dir: Path | None = None
    restart_backoff: float = 10.0
    image_pull_backoff: float = 1.0
    events: bool = True
    path: str = DEFAULT_PATH
    node_runtimes: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> RuntimeConfig:
        raw = dict(raw or {})
        commands = raw.pop("imageCommands", None)
        entrypoints = raw.pop("imageEntrypoints", None)
        try:
            config = cls(
                image_commands=_commands(commands) if commands is not None else DEFAULT_COMMANDS,
                image_entrypoints=_commands(entrypoints, "imageEntrypoints") if entrypoints is not None else (),
                missing_images=tuple(str(i) for i in raw.pop("missingImages", ()) or ()),
                isolation=bool(raw.pop("isolation", True)),
                root_dir=Path(raw.pop("rootDir")) if raw.get("rootDir") else None,
                restart_backoff=float(raw.pop("restartBackoffSeconds", 10.0)),
                image_pull_backoff=float(raw.pop("imagePullBackoffSeconds", 1.0)),
                events=bool(raw.pop("events", True)),
                path=str(raw.pop("path", DEFAULT_PATH)),
                node_runtimes={str(k): str(v) for k, v in (raw.pop("nodeRuntimes", None) or {}).items()},
                aliases={str(k): str(v) for k, v in (raw.pop("aliases", None) or DEFAULT_ALIASES).items()},
            )
        except (TypeError, ValueError) as e:
            raise RuntimeConfigError(f"sim.runtime: {e}") from e
        raw.pop("rootDir", None)
        if raw:
            raise RuntimeConfigError(f"sim.runtime: unknown keys {sorted(raw)}; see gateway/sim/runtime/config.py")
        return config

    def image_missing(self, image: str) -> bool:
        return any(
            fnmatch.fnmatchcase(image, p) or fnmatch.fnmatchcase(image_name(image), p) for p in self.missing_images
        )

    def default_command(self, image: str) -> tuple[str, ...]:
        """The image's CMD: what runs after its ENTRYPOINT when the container sets neither command nor args."""
        return _first(self.image_commands, image) or ("sh",)

    def entrypoint(self, image: str) -> tuple[str, ...]:
        """The image's ENTRYPOINT (usually none): what a container's args are handed to when it sets no command."""
        return _first(self.image_entrypoints, image) or ()

    def backoff(self, restarts: int) -> float:
        """CrashLoopBackOff delay before restart number `restarts` (1-based): base, 2x base, ... up to 5 min."""
        return float(min(self.restart_backoff * 2 ** max(restarts - 1, 0), MAX_BACKOFF))


def _first(table: tuple[tuple[str, tuple[str, ...]], ...], image: str) -> tuple[str, ...] | None:
    name = image_name(image)
    for pattern, command in table:
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(image, pattern):
            return command
    return None


def _commands(raw: Any, key: str = "imageCommands") -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise RuntimeConfigError(f"sim.runtime.{key}: expected a mapping of image glob to a command list")
    pairs = []
    for pattern, command in raw.items():
        if isinstance(command, str):
            command = [command]
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise RuntimeConfigError(f"sim.runtime.{key}[{pattern!r}]: expected a non-empty list of strings")
        pairs.append((str(pattern), tuple(command)))
    return tuple(pairs)


def image_name(image: str) -> str:
    """The repository's last part without tag or digest: "docker.io/library/python:3.12" -> "python"."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]
