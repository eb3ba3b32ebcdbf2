"""Instance root folders and AMI artifacts: the sandbox's stand-in for EBS.

On AWS an instance boots from a copy of its AMI's root snapshot, CreateImage
snapshots the instance's root volume, and the root volume of an instance
launched from an AMI is deleted on termination (DeleteOnTermination defaults to
true). Here a root volume is a folder, a snapshot is a copied folder:

    amis/<ami-id>/root      --RunInstances-->  instances/<id>/root
    instances/<id>/root     --CreateImage--->  amis/<new-ami-id>/root

AMIs the sandbox never built (moto's ~1300 public AMIs) have no artifact; their
instances start with an empty root, like a bare OS image.

Process start/stop of instances comes later; this class only keeps the folders.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .adapter import LaunchedInstance
from .state import StateDir, atomic_write

log = logging.getLogger(__name__)


def _replace_tree(src: Path | None, dst: Path) -> None:
    """Make dst a copy of src (or an empty folder), appearing all at once: a root or
    artifact is never seen half-copied, e.g. by a CreateImage racing a launch."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src is not None:
        # symlinks=True: an artifact is a disk image; copy links, never follow them
        # out of the sandbox.
        shutil.copytree(src, tmp, symlinks=True)
    else:
        tmp.mkdir()
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


class InstanceRoots:
    """Implements `adapter.MotoListener` for root folders and AMI artifacts."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def instances_launched(self, instances: list[LaunchedInstance]) -> None:
        for inst in instances:
            artifact = self.state.ami_root(inst.image_id)
            if artifact.is_dir():
                _replace_tree(artifact, self.state.instance_root(inst.id))
                log.info(
                    "instance %s root created from %s artifact "
                    "(AWS: an instance boots from a copy of its AMI's root snapshot)",
                    inst.id,
                    inst.image_id,
                )
            else:
                _replace_tree(None, self.state.instance_root(inst.id))
                log.info(
                    "instance %s root created empty: %s has no sandbox artifact "
                    "(an AMI the sandbox did not build stands for a bare OS image)",
                    inst.id,
                    inst.image_id,
                )
            if inst.user_data is not None:
                atomic_write(self.state.instance_user_data(inst.id), inst.user_data)
                log.info(
                    "instance %s user data saved, %d bytes (AWS: user data is handed "
                    "to the instance at launch)",
                    inst.id,
                    len(inst.user_data),
                )

    def instance_terminated(self, instance_id: str) -> None:
        root = self.state.instance_root(instance_id)
        if root.exists():
            shutil.rmtree(root)
            log.info(
                "instance %s root removed on termination "
                "(AWS: the root EBS volume has DeleteOnTermination=true)",
                instance_id,
            )

    def image_created(self, image_id: str, instance_id: str) -> None:
        root = self.state.instance_root(instance_id)
        if not root.is_dir():
            # moto accepts CreateImage on a terminated instance; its root is gone,
            # so the image has nothing to boot but a bare OS.
            log.warning(
                "image %s has no artifact: instance %s has no root folder (terminated?)",
                image_id,
                instance_id,
            )
            return
        _replace_tree(root, self.state.ami_root(image_id))
        log.info(
            "image %s artifact snapshotted from instance %s root (AWS: CreateImage "
            "snapshots the root volume; later changes to the instance do not affect the image)",
            image_id,
            instance_id,
        )

    def image_copied(self, image_id: str, source_image_id: str) -> None:
        source = self.state.ami_root(source_image_id)
        if source.is_dir():
            _replace_tree(source, self.state.ami_root(image_id))
            log.info(
                "image %s artifact copied from %s (AWS: CopyImage copies the snapshots)",
                image_id,
                source_image_id,
            )

    def image_deregistered(self, image_id: str) -> None:
        ami_dir = self.state.ami_dir(image_id)
        if ami_dir.exists():
            shutil.rmtree(ami_dir)
            log.info(
                "image %s artifact removed on deregistration "
                "(AWS: a deregistered AMI cannot launch instances)",
                image_id,
            )

    def backends_reset(self) -> None:
        for folder in (self.state.instances_dir, self.state.amis_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        log.info("moto state reset: all instance roots and AMI artifacts removed")

    def root_of(self, instance_id: str) -> Path | None:
        root = self.state.instance_root(instance_id)
        return root if root.is_dir() else None
