"""Build codex-box's images without a registry and import them into every engine present.

    .venv/bin/python images/build.py [--only test|base] [--force]

`codex-box/test` is busybox-static (seconds); `codex-box/base` is Debian bookworm made
with mmdebstrap from Debian packages (about a minute). Each image carries the hash of
its recipe as a label; an image whose recipe has not changed is not rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = {"test": HERE / "test.sh", "base": HERE / "base.sh"}
LABEL = "codex-box.recipe"


def recipe_hash(name: str) -> str:
    digest = hashlib.sha256(RECIPES[name].read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def build_tar(name: str, workdir: Path) -> Path:
    out = workdir / f"{name}.tar"
    if name == "base":
        subprocess.run(["sh", str(RECIPES["base"]), str(out)], check=True)
        return out
    root = workdir / "rootfs"
    root.mkdir()
    subprocess.run(["sh", str(RECIPES["test"]), str(root)], check=True)

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(out, "w") as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name, filter=as_root)
    return out


class Engine:
    """The two calls build.py needs, per engine: which recipe an image has, import a tar."""

    def __init__(self, name: str, recipe_of: Callable[[str], str | None],
                 import_tar: Callable[[Path, str, str], None]) -> None:
        self.name, self.recipe_of, self.import_tar = name, recipe_of, import_tar


def docker_engine() -> Engine | None:
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:
        return None
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException:
        return None

    def recipe_of(image: str) -> str | None:
        try:
            return (client.images.get(image).labels or {}).get(LABEL)
        except ImageNotFound:
            return None

    def import_tar(tar: Path, image: str, recipe: str) -> None:
        repository, _, tag = image.partition(":")
        client.api.import_image(src=str(tar), repository=repository, tag=tag or "latest",
                                changes=[f"LABEL {LABEL}={recipe}", 'CMD ["/bin/sh"]'])

    return Engine("docker", recipe_of, import_tar)


def podman_engine() -> Engine | None:
    """Podman through its CLI: podman-py has no image import, and the API service need
    not be running to build images."""
    import shutil

    podman = shutil.which("podman")
    if podman is None:
        return None
    if subprocess.run([podman, "info"], capture_output=True, check=False).returncode != 0:
        return None

    def recipe_of(image: str) -> str | None:
        out = subprocess.run(
            [podman, "image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', image],
            capture_output=True, text=True, check=False,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None

    def import_tar(tar: Path, image: str, recipe: str) -> None:
        subprocess.run(
            [podman, "import", "--quiet", "--change", f"LABEL {LABEL}={recipe}",
             "--change", 'CMD ["/bin/sh"]', str(tar), image],
            check=True, stdout=subprocess.DEVNULL,
        )

    return Engine("podman", recipe_of, import_tar)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RECIPES))
    parser.add_argument("--force", action="store_true", help="rebuild even if unchanged")
    args = parser.parse_args()
    engines = [e for e in (docker_engine(), podman_engine()) if e is not None]
    if not engines:
        print("images: no container engine answers (start dockerd, or install podman); "
              "nothing to build",
              file=sys.stderr)
        return 1
    for name in [args.only] if args.only else list(RECIPES):
        image, recipe = f"codex-box/{name}", recipe_hash(name)
        todo = [e for e in engines if args.force or e.recipe_of(image) != recipe]
        if not todo:
            print(f"images: {image} is up to date ({recipe}) in "
                  f"{', '.join(e.name for e in engines)}")
            continue
        with tempfile.TemporaryDirectory(prefix="codex-box-image-") as tmp:
            tar = build_tar(name, Path(tmp))
            for engine in todo:
                engine.import_tar(tar, image, recipe)
                print(f"images: imported {image} ({recipe}) into {engine.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
