#!/usr/bin/env python3
"""Runs drgn_oracle.py or drgn_procs.py on a dump of another architecture than x86_64:

  drgn_arch.py ARCH SCRIPT ARGS...     (ARCH: aarch64)

drgn_oracle.open_program tells drgn the platform of dumps without an ELF header
(kdump-compressed, flattened) and names x86_64; here drgn.Platform gives ARCH's instead. A
wrapper, so that the x86_64 dumps' oracle key (a hash of drgn_oracle.py) and outputs stay as
they were.
"""

import runpy
import sys
from pathlib import Path

import drgn

ARCHITECTURES = {"aarch64": drgn.Architecture.AARCH64}


def main():
    arch, script = sys.argv[1], sys.argv[2]
    sys.argv = [script, *sys.argv[3:]]
    sys.path.insert(0, str(Path(script).resolve().parent))
    platform = drgn.Platform

    def arch_platform(_arch, flags=None):
        # drgn's default flags for ARCH (64-bit, little-endian for aarch64).
        return platform(ARCHITECTURES[arch])

    drgn.Platform = arch_platform
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
