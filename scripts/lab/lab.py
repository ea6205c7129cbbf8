#!/usr/bin/env python3
"""kdive real-crash lab: Debian kernels crashed under QEMU, dumped every way, with oracles.

Run through scripts/lab/build (which installs the apt packages first). Everything lands under
${KDIVE_LAB_DIR:-~/.cache/kdive-lab}; see scripts/lab/README.md for the layout and manifests.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

# Bump when the dumps or manifests a run produces change in a way the cache must not reuse.
LAB_FORMAT = 6
REPO = Path(__file__).resolve().parents[2]
LAB_SRC = REPO / "lab"
SCRIPTS = Path(__file__).resolve().parent
# The project's shared/ folder sits beside the checkout (also in CI's fresh clones).
MAKEDUMPFILE_TARBALL = Path(os.environ.get(
    "KDIVE_MAKEDUMPFILE_TARBALL", REPO.parent / "shared" / "tools" / "makedumpfile-1.7.9.tar.gz"))
DRGN_VERSION = "0.3.0"
CRASH8_VERSION = "8.0.2"  # Debian 12's crash, installed by scripts/lab/build
CRASH8_NOT_ARM64 = "not run: Debian 12's crash 8.0.2 reads x86_64 dumps only"

# The guest RAM (MB) unless a series needs more.
GUEST_MEMORY_MB = 256
ARM64_MEMORY_MB = 384


class Series:
    """One kernel series: which package names it takes its newest ABI from, and how they are laid out.

    layout "image": linux-image-<rel>-unsigned (vmlinuz in boot/, modules in lib/modules/);
    layout "split" (sid, 7.x): linux-binary-unsigned-<rel> (usr/lib/modules/<rel>/vmlinuz.unsigned),
    linux-modules-<rel> and linux-base-<rel>. <rel> is <abi>-<flavour>."""

    def __init__(self, name, abi_re, flavour, layout="image", sid_build=False, cc_fallback=None,
                 la57_kdump=False, crash9_args=(), prune_debug_modules=False,
                 memory_mb=GUEST_MEMORY_MB, arch="x86_64"):
        self.name = name
        self.flavour = flavour
        # The guest's architecture (manifest kernel.arch): how it boots, which packages and
        # tools it takes (ARCHES).
        self.arch = arch
        self.a = ARCHES[arch]
        self.layout = layout
        prefix = "linux-image-" if layout == "image" else "linux-binary-unsigned-"
        suffix = "-unsigned" if layout == "image" else ""
        self.image_re = re.compile(
            rf"^{re.escape(prefix)}({abi_re})-{re.escape(flavour)}{re.escape(suffix)}$")
        self.prefix, self.suffix = prefix, suffix
        # The module is built in the sid root when the kernel's compiler needs sid's glibc.
        self.sid_build = sid_build
        # The compiler to use when the kernel's own is not installable here (5.10: gcc-10).
        self.cc_fallback = cc_fallback
        # 6.12 with 5-level paging: `kexec -p` (kexec-tools 2.0.25, kexec_load) fails with
        # EINVAL and this kexec has no kexec_file_load; so its 5-level crash is QEMU only.
        self.la57_kdump = la57_kdump
        self.crash9_args = list(crash9_args)
        self.prune_debug_modules = prune_debug_modules
        # kexec_load refuses (EINVAL) segments over half of the RAM the kernel has left:
        # generic's and rt's kernel image needs 56 MB (memsz), more than half of what 256 MB
        # leaves beside crashkernel=96M; 7.x cloud fails the same way (or finds no room for
        # crashkernel= at all) in 256 MB.
        self.memory_mb = memory_mb

    def image_package(self, abi):
        return f"{self.prefix}{abi}-{self.flavour}{self.suffix}"


class Arch:
    """What a guest architecture changes: Debian's package architecture, QEMU, the console,
    the compilers for the test module and the static userland programs, and the crash and
    makedumpfile that read its dumps on this (x86_64) host."""

    def __init__(self, name, deb_arch, kbuild_arch, qemu, machine, console, cross_compile=None):
        self.name = name
        self.deb_arch = deb_arch
        self.kbuild_arch = kbuild_arch
        self.qemu = qemu
        self.machine = machine
        self.console = console
        # The kbuild ARCH= and CROSS_COMPILE= of a cross build (None: the host's own).
        self.cross_compile = cross_compile

    @property
    def native(self):
        return self.cross_compile is None

    def tool(self, name):
        """A binutils tool that reads this architecture's objects (objcopy, readelf)."""
        return name if self.native else f"{self.cross_compile}{name}"


ARCHES = {a.name: a for a in [
    Arch("x86_64", "amd64", "x86", "qemu-system-x86_64", [], "ttyS0"),
    # -M virt: PL011 console (ttyAMA0), fw_cfg (VMCOREINFO for QEMU's dumps), PCIe for NVMe.
    Arch("aarch64", "arm64", "arm64", "qemu-system-aarch64", ["-M", "virt"], "ttyAMA0",
         cross_compile="aarch64-linux-gnu-"),
]}


SERIES = {s.name: s for s in [
    Series("5.10", r"5\.10\.0-\d+", "cloud-amd64", cc_fallback="gcc-12"),
    Series("6.1", r"6\.1\.0-\d+", "cloud-amd64", la57_kdump=True),
    Series("6.12", r"6\.12\.\d+\+deb12", "cloud-amd64"),
    Series("6.12-generic", r"6\.12\.\d+\+deb12", "amd64", prune_debug_modules=True,
           memory_mb=384),
    Series("6.12-rt", r"6\.12\.\d+\+deb12", "rt-amd64", prune_debug_modules=True,
           memory_mb=384),
    # crash 9.0.2 opens 7.x only without its modules.
    Series("7.x", r"7\.\d+\.\d+\+deb\d+", "cloud-amd64", layout="split", sid_build=True,
           crash9_args=["--no_modules"], memory_mb=384),
    # arm64 under TCG (-M virt -cpu max): 6.12's cloud kernel runs 52-bit VA (LPA2) there.
    # Their debug modules are pruned as generic's and rt's (1.2-1.4 GB each): disk.
    Series("6.1-arm64", r"6\.1\.0-\d+", "cloud-arm64", arch="aarch64",
           memory_mb=ARM64_MEMORY_MB, prune_debug_modules=True),
    Series("6.12-arm64", r"6\.12\.\d+\+deb12", "cloud-arm64", arch="aarch64",
           memory_mb=ARM64_MEMORY_MB, prune_debug_modules=True),
]}
# --series all (what scripts/test and CI build) is every x86_64 series; --series arm64 the
# aarch64 ones (kdive does not read them yet).
ALL_SERIES = [n for n, s in SERIES.items() if s.arch == "x86_64"]
ARM64_SERIES = [n for n, s in SERIES.items() if s.arch == "aarch64"]
# (scale is built for SCALE_SERIES only.)
SCENARIOS = ["null-init", "bug", "kthread-null", "panic", "timer", "sysrq-c", "hung", "nmi",
             "overflow", "busy", "userland", "scale"]
# Scenarios whose guest runs lab/userland/ (kdive-busy) and then crashes with SysRq-c. Their
# initramfs is main.cpio with lab/userland/'s files appended (rdinit=/kdive/init starts them
# beside the lab's /init, unchanged): the other scenarios' cache keys stay as they were.
USERLAND_SCENARIOS = ("userland", "scale")
# scale: one series, a 4 GiB guest, 10,000 tasks; kdump only, filtered in the capture kernel.
SCALE_SERIES = ("6.12",)
SCALE_MEMORY_MB = 4096
SCALE_CRASHKERNEL_MB = 256
# userland's extra virtio disks (MiB): swap and an ext2 file system (lab/userland/userland.sh
# tells them apart by size).
USERLAND_DISKS = (("swap", 128), ("ext", 32))
# Modules the userland guest loads besides GUEST_MODULES where they are modules: the virtio
# disks and ext4 (which mounts the ext2 disk; up to 6.x it asks the crypto API for crc32c,
# which generic and rt have as a module; 7.x's ext4 calls the crc32c library, and its crypto
# module has another name: a module that modules.dep does not list is left out).
USERLAND_MODULES = (("CONFIG_VIRTIO_PCI", "virtio_pci"), ("CONFIG_VIRTIO_BLK", "virtio_blk"),
                    ("CONFIG_CRYPTO_CRC32C", "crc32c_generic"), ("CONFIG_EXT4_FS", "ext4"))
# The arm64 scenarios that also get a QEMU capture (each QEMU ELF dump of a 384 MB guest is
# ~390 MB, and 6.12-arm64's kdump dumps stay raw: see README "arm64"); the others are kdump only.
ARM64_QEMU_SCENARIOS = ("null-init", "sysrq-c", "userland")
# Scenarios that only x86_64 guests have, and why.
X86_ONLY_SCENARIOS = {"nmi": "QEMU's inject-nmi has no arm virt machine behind it, and "
                             "unknown_nmi_panic is x86's"}
# The crash that gets every format; the others get a QEMU ELF dump and a zstd -d 31 kdump.
FULL_MATRIX_SCENARIO = "null-init"

GUEST_CPUS = 2
CRASHKERNEL_MB = 96
BOOT_TIMEOUT_S = 180
KDUMP_TIMEOUT_S = 360
# scale: 10,000 tasks to start and a 4 GiB /proc/vmcore to filter, under TCG.
SCALE_KDUMP_TIMEOUT_S = 1500
KDUMP_ATTEMPTS = 8
# What the kernel (6.1, 6.12) and kexec say when KASLR left no good place for crashkernel=.
CRASHKERNEL_PLACEMENT_FAILURES = ("crashkernel reservation failed", "cannot allocate crashkernel",
                                  "kexec_load failed: Invalid argument")
DUMP_TIMEOUT_S = 180
ORACLE_TIMEOUT_S = 300
# Bump when the oracle outputs change (commands, scripts, error reporting).
ORACLE_FORMAT = 3
# The sid root (debootstrap) that holds crash 9 and sid's compiler for the 7.x module.
SID_PACKAGES = ["crash", "make", "gcc-16", "libc6-dev", "pahole", "libelf1t64", "libssl3t64",
                "zlib1g"]
# How many ABIs, newest first, to try when the newest is missing from the mirror's pool.
DOWNLOAD_CANDIDATES = 16
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The lab's apt lists: the host's and the arm64 guests' packages.
APT_ARCHITECTURES = ("amd64", "arm64")
CRASH_COMMANDS = ["sys", "bt", "bt -a", "ps", "mod", "kmem -i", "log", "foreach bt", "runq"]
# More crash commands on the userland dumps: the whole system's views, then per process
# (the pids the guest's console named: manifest `userland.processes`), by role.
USERLAND_CRASH_COMMANDS = ["ps -a", "net", "ipcs", "mount", "swap", "timer", "timer -r",
                           "kmem -s", "dev"]
USERLAND_PID_COMMANDS = {"*": ["files", "vm", "task -R comm,state"],
                         "net": ["net -s"], "signals": ["sig"], "timer": ["sig"],
                         "threads": ["ps -g"], "children": ["ps -c"], "mmap": ["vm -p"],
                         "swap": ["vm -p"]}
# The scale dump (10,000 tasks): `foreach bt` and `bt -a` of them all would take minutes.
SCALE_CRASH_COMMANDS = ["sys", "bt", "ps", "mod", "kmem -i", "log", "runq"]
SCALE_DRGN_SKIPPED = ("not run on the scale dump (drgn_oracle.py's stacks of 10,000 tasks take "
                      "more than ORACLE_TIMEOUT_S); drgn.procs.json has drgn's task count")

LIVE_QEMUS = set()
LIVE_LOCK = threading.Lock()
PRINT_LOCK = threading.Lock()


class LabError(Exception):
    pass


def log(msg):
    with PRINT_LOCK:
        print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, timeout=600, check=True, **kw):
    """Runs a command with a bounded wait; returns CompletedProcess (text)."""
    try:
        proc = subprocess.run(cmd, timeout=timeout, text=True, capture_output=True, **kw)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timeout after {timeout}s: {' '.join(map(str, cmd))}") from e
    if check and proc.returncode != 0:
        raise LabError(f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n"
                       f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def sha256_files(paths, extra=""):
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def write_json(path, data):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- tools

def ensure_makedumpfile(root, arch="x86_64"):
    """Upstream makedumpfile 1.7.9 (Debian 12's 1.7.2 writes uncompressed files for -p/-z).
    It reads one architecture's dumps, chosen at build time: another than the host's is a
    host binary built with TARGET=<arch> (tools/makedumpfile-1.7.9-<arch>)."""
    tool_dir = root / "tools"
    native = arch == "x86_64"
    src = tool_dir / ("makedumpfile-1.7.9" if native else f"makedumpfile-1.7.9-{arch}")
    binary = src / "makedumpfile"
    if binary.exists():
        return binary
    if not MAKEDUMPFILE_TARBALL.exists():
        raise LabError(f"makedumpfile source not found at {MAKEDUMPFILE_TARBALL}")
    log(f"building upstream makedumpfile 1.7.9 for {arch} dumps")
    tool_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(src, ignore_errors=True)
    unpack = tool_dir / f"makedumpfile-unpack-{arch}"
    shutil.rmtree(unpack, ignore_errors=True)
    unpack.mkdir()
    run(["tar", "xzf", str(MAKEDUMPFILE_TARBALL), "-C", str(unpack)])
    (unpack / "makedumpfile-1.7.9").rename(src)
    unpack.rmdir()
    cross = []
    if not native:
        # Its TARGET= build passes -U__x86_64__, which also tells glibc's headers the host is
        # 32-bit (gnu/stubs-32.h, __WORDSIZE): rename the macro in makedumpfile's own sources
        # instead, so that its x86_64 code is left out and the system headers stay the host's.
        for f in [*src.glob("*.[ch]"), *src.glob("arch/*.[ch]")]:
            text = f.read_text()
            if "__x86_64__" in text:
                f.write_text(text.replace("__x86_64__", "__makedumpfile_host_x86_64__"))
        cross = [f"TARGET={arch}", "CROSS="]
    run(["make", "-C", str(src), f"-j{os.cpu_count() or 2}", "LINKTYPE=dynamic", "USELZO=on",
         "USESNAPPY=on", "USEZSTD=on", *cross], timeout=600)
    if not binary.exists():
        raise LabError("makedumpfile build produced no binary")
    return binary


def ensure_drgn(root):
    venv = root / "tools" / f"drgn-{DRGN_VERSION}"
    python = venv / "bin" / "python"
    stamp = venv / ".kdive-ok"
    if stamp.exists():
        return python
    log(f"installing drgn {DRGN_VERSION} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", f"drgn=={DRGN_VERSION}"], timeout=900)
    stamp.write_text(DRGN_VERSION + "\n")
    return python


# ---------------------------------------------------------------- kernels

# ---------------------------------------------------------------- apt (lab-owned)

def machine_mirrors():
    """(mirror URI, security URI or None) from the machine's own apt sources: one-line
    sources.list files and deb822 .sources files. Nothing is changed there."""
    entries = []  # (uri, [suites])
    etc = Path("/etc/apt")
    for f in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                entries.append((line[1], [line[2]]))
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0] != "no":
                for uri in fields.get("uris", []):
                    entries.append((uri, fields.get("suites", [])))
    mirror = next((u for u, suites in entries
                   if any(re.fullmatch(r"[a-z]+(-updates)?", x) for x in suites)), None)
    security = next((u for u, suites in entries if any(x.endswith("-security") for x in suites)),
                    None)
    if mirror is None:
        raise LabError("no Debian mirror found in /etc/apt/sources.list{,.d/*.sources}")
    return mirror.rstrip("/"), security.rstrip("/") if security else None


class LabApt:
    """apt-get/apt-cache on a lab-owned sources list and state (bookworm, bullseye, sid on the
    machine's mirror): the machine's apt configuration and lists are never touched."""

    def __init__(self, root, refresh=False):
        self.dir = root / "apt"
        mirror, security = machine_mirrors()
        self.mirror = mirror
        if security is None:
            security = re.sub(r"/debian$", "/debian-security", mirror)
        opt = f"[signed-by={DEBIAN_KEYRING}]"
        lines = [f"deb {opt} {mirror} {suite} main"
                 for suite in ("bookworm", "bookworm-updates", "bullseye", "sid")]
        lines += [f"deb {opt} {security} {suite} main"
                  for suite in ("bookworm-security", "bullseye-security")]
        # crash's source (sid), for the crash that reads arm64 dumps (ensure_crash_arm64).
        lines.append(f"deb-src {opt} {mirror} sid main")
        text = "\n".join(lines) + "\n"
        for d in ("etc", "state/lists/partial", "cache/archives/partial"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        self.sources = self.dir / "etc" / "sources.list"
        self.opts = ["-o", f"Dir::Etc::SourceList={self.sources}",
                     "-o", "Dir::Etc::SourceParts=/dev/null",
                     "-o", f"Dir::State={self.dir / 'state'}",
                     "-o", f"Dir::Cache={self.dir / 'cache'}",
                     "-o", "APT::Sandbox::User=root",
                     # The arm64 series' packages (`apt-get download PKG:arm64`) from the lab's
                     # own lists: the machine's dpkg architectures are never changed.
                     *(a for arch in APT_ARCHITECTURES
                       for a in ("-o", f"APT::Architectures::={arch}")),
                     "-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
                     "-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
                     "-o", "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"]
        stamp = self.dir / ".kdive-updated"
        # Packages the index names but the mirror's pool answers 404 for (package=version).
        self.missing_file = self.dir / "missing.json"
        # The stamp names the architectures the lists were fetched for.
        archs = " ".join(APT_ARCHITECTURES)
        changed = not self.sources.exists() or self.sources.read_text() != text or \
            not stamp.exists() or stamp.read_text().split("\n")[1:2] != [archs]
        if changed or refresh or not stamp.exists():
            self.sources.write_text(text)
            log("apt-get update (lab sources: bookworm, bullseye, sid)")
            self.get("update", timeout=900)
            stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + f"\n{archs}\n")
            self.missing_file.unlink(missing_ok=True)
        self.missing = json.loads(self.missing_file.read_text()) \
            if self.missing_file.exists() else {}
        self.lock = threading.Lock()

    def remember_missing(self, pkg, why):
        with self.lock:
            self.missing[pkg] = why
            write_json(self.missing_file, self.missing)

    def get(self, *args, timeout=1800, **kw):
        return run(["apt-get", *self.opts, *args], timeout=timeout, **kw)

    def cache(self, *args):
        return run(["apt-cache", *self.opts, *args], timeout=300)


def resolve_versions(apt, series, pin):
    """The ABIs to try, newest first: the mirror's index can name packages its pool lacks
    (bullseye-security's newest 5.10 images answer 404), so the newest that downloads wins."""
    s = SERIES[series]
    if pin:
        if not s.image_re.match(s.image_package(pin)):
            raise LabError(f"--pin {pin} is not a {series} kernel ABI name")
        return [pin]
    names = apt.cache("pkgnames", s.prefix).stdout.split()
    abis = [m.group(1) for n in names if (m := s.image_re.match(n))]
    if not abis:
        raise LabError(f"apt-cache knows no {s.image_package('*')} for {series}")

    def key(abi):
        return [int(x) for x in re.findall(r"\d+", abi)]
    return sorted(set(abis), key=key, reverse=True)[:DOWNLOAD_CANDIDATES]


class NotOnMirror(LabError):
    pass


def package_field(apt, pkg, field):
    out = apt.cache("show", "--no-all-versions", pkg).stdout
    m = re.search(rf"^{field}: (.*)$", out, re.M)
    if not m:
        raise LabError(f"apt-cache show {pkg}: no {field}")
    return m.group(1).strip()


# ---------------------------------------------------------------- sid root (crash 9, gcc-16)

def ensure_sid_root(root, apt):
    """A sid root made by debootstrap (minbase + crash 9 + sid's compiler), cached."""
    sid = root / "tools" / "sid-root"
    stamp = sid / ".kdive-ok"
    want = " ".join(SID_PACKAGES)
    if stamp.exists() and stamp.read_text().split("\n")[0] == want:
        return sid
    tmp = sid.with_name("sid-root.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(sid, ignore_errors=True)
    log(f"debootstrap sid ({want})")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(SID_PACKAGES)}", "sid",
         str(tmp), apt.mirror], timeout=1800)
    version = run(["chroot", str(tmp), "dpkg-query", "-W", "-f", "${Version}", "crash"]).stdout
    (tmp / ".kdive-ok").write_text(f"{want}\ncrash {version.strip()}\n")
    tmp.rename(sid)
    return sid


def ensure_crash_arm64(root, apt):
    """crash 9 that reads arm64 dumps on this x86_64 host: sid's crash source package (its gdb
    16.3 is a component tarball: no download from ftp.gnu.org), `make target=ARM64` (gdb
    configured --target=aarch64-elf-linux) with lzo, snappy and zstd, in
    tools/crash-arm64/source/build; only the binary is kept. Returns (binary, version)."""
    base = root / "tools" / "crash-arm64"
    binary = base / "crash"
    stamp = base / ".kdive-ok"
    if stamp.exists() and binary.exists():
        return binary, stamp.read_text().strip()
    shutil.rmtree(base, ignore_errors=True)
    dl = base / "source"
    dl.mkdir(parents=True)
    log("crash for arm64 dumps: apt-get source crash (sid), make target=ARM64")
    apt.get("source", "--download-only", "crash", cwd=dl, timeout=900)
    dsc = next(dl.glob("crash_*.dsc"))
    version = dsc.name[len("crash_"):-len(".dsc")]
    # (dpkg-source puts the orig tarballs beside the tree it extracts: all under source/.)
    build = dl / "build"
    run(["dpkg-source", "-x", str(dsc), str(build)], timeout=600)
    t0 = time.monotonic()
    # `make target=ARM64 lzo snappy zstd`: configures and builds crash (gdb first) with them.
    # 16 min on two cores beside a cargo build; past an hour while the lab's own boots and
    # unpacking ran beside it on a cold cache (2026-12-07): hence the generous bound.
    proc = run(["make", f"-j{os.cpu_count() or 2}", "target=ARM64", "lzo", "snappy", "zstd"],
               cwd=build, timeout=4 * 3600, check=False)
    (base / "build.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode != 0 or not (build / "crash").exists():
        raise LabError(f"crash target=ARM64 build failed (see {base / 'build.log'}): "
                       f"{proc.stderr[-1500:]}")
    shutil.move(build / "crash", binary)
    shutil.rmtree(dl)
    log(f"crash {version} for arm64 dumps built in {time.monotonic() - t0:.0f}s")
    stamp.write_text(f"{version} (target=ARM64)\n")
    return binary, stamp.read_text().strip()


def sid_crash_version(sid):
    return (sid / ".kdive-ok").read_text().split("\n")[1].split(" ", 1)[1]


def sid_cmd(root, sid, cwd, argv):
    """argv run inside the sid root, in cwd, with the lab root mounted (scripts/lab/sid-run)."""
    return ["unshare", "--mount", "--propagation", "private", str(SCRIPTS / "sid-run"),
            str(sid), str(root), str(cwd), *map(str, argv)]


def sid_crash_cmd(root, sid, cwd, series, args):
    """crash 9 from the sid root on a dump of `series`: `args` are crash's options, the vmlinux
    and the dump files (paths under root); scripts/bench runs crash 9 the same way."""
    return sid_cmd(root, sid, cwd, ["crash", *SERIES[series].crash9_args, *args])


# ---------------------------------------------------------------- kernels

class Kernel:
    def __init__(self, root, series, abi):
        s = SERIES[series]
        self.series = series
        self.spec = s
        self.abi = abi
        self.release = f"{abi}-{s.flavour}"
        # Cloud kernels keep the directory they always had (kernels/<abi>).
        self.dir = root / "kernels" / (abi if s.flavour == "cloud-amd64" else self.release)
        self.vmlinux = self.dir / "usr/lib/debug/boot" / f"vmlinux-{self.release}"
        if s.layout == "split":
            self.modules_base = self.dir / "usr"
            self.vmlinuz = self.dir / "usr/lib/modules" / self.release / "vmlinuz.unsigned"
        else:
            self.modules_base = self.dir
            self.vmlinuz = self.dir / "boot" / f"vmlinuz-{self.release}"
        self.modules_dir = self.modules_base / "lib/modules" / self.release
        self.debug_modules_dir = self.dir / "usr/lib/debug/lib/modules" / self.release
        self.headers = self.dir / "usr/src" / f"linux-headers-{self.release}"
        self.stamp = self.dir / ".kdive-unpacked"
        self.debian_version = None
        self.module_ko = None
        self.module_cc = None
        self.initramfs = None
        self.capture_initramfs = None
        self.userland_initramfs = None
        self.scale_initramfs = None

    def five_level(self):
        """Whether the kernel can run 5-level paging: 5.10's cloud config has
        `# CONFIG_X86_5LEVEL is not set` (it stays on 4 levels under -cpu max); from 6.16 the
        option is gone and 5-level support always built."""
        return "# CONFIG_X86_5LEVEL is not set" not in (self.headers / ".config").read_text()

    def paging_levels(self, la57):
        """Page table levels the guest runs: x86_64 4, or 5 with la57; arm64 its
        CONFIG_PGTABLE_LEVELS (6.12's 5 is 52-bit VA with LPA2, which QEMU's -cpu max has)."""
        if self.spec.a.native:
            return 5 if la57 else 4
        return int(self.config("CONFIG_PGTABLE_LEVELS"))

    def config(self, name):
        text = (self.headers / ".config").read_text()
        m = re.search(rf"^{name}=(.*)$", text, re.M)
        return m.group(1).strip('"') if m else None


def ensure_kernel(root, apt, series, abi):
    k = Kernel(root, series, abi)
    if k.stamp.exists():
        k.debian_version = json.loads(k.stamp.read_text())["debian_version"]
        return k
    release = k.release
    image = k.spec.image_package(abi)
    headers = f"linux-headers-{release}"
    k.debian_version = package_field(apt, image, "Version")
    v = k.debian_version
    # A foreign architecture's packages are named with it (the lab's lists have amd64 and arm64).
    a = "" if k.spec.a.native else f":{k.spec.a.deb_arch}"
    pkgs = [f"{image}{a}={v}", f"linux-image-{release}-dbg{a}={v}", f"{headers}{a}={v}"]
    if k.spec.layout == "split":
        pkgs += [f"linux-modules-{release}={v}", f"linux-base-{release}={v}"]
    # The headers need their -common package (architecture all) and the kbuild tools
    # (scripts/, tools/objtool): the host's, amd64, also for a cross build.
    for dep in package_field(apt, headers, "Depends").split(","):
        name = dep.strip().split(" ")[0].split("|")[0]
        if (name.startswith("linux-headers-") or name.startswith("linux-kbuild-")) and \
                not any(p.startswith(name + "=") for p in pkgs):
            pkgs.append(name)
    debs = root / "debs" / k.dir.name
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    log(f"{series}: downloading {' '.join(pkgs)}")
    if apt.missing.get(pkgs[0]):
        raise NotOnMirror(apt.missing[pkgs[0]])
    proc = apt.get("download", *pkgs, cwd=debs, timeout=1800, check=False)
    if proc.returncode != 0:
        shutil.rmtree(debs, ignore_errors=True)
        err = f"apt-get download: {(proc.stdout + proc.stderr).strip()[-1500:]}"
        if "404" not in proc.stdout + proc.stderr:
            raise LabError(err)
        # Remembered until the next --apt-update: cached runs do not ask again.
        apt.remember_missing(pkgs[0], err.splitlines()[-1])
        raise NotOnMirror(err)
    shutil.rmtree(k.dir, ignore_errors=True)
    k.dir.mkdir(parents=True)
    log(f"{series}: unpacking {release}")
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg-deb", "-x", str(deb), str(k.dir)], timeout=900)
    fix_headers_makefile(k)
    # The scripts/ and tools/ symlinks are relative (../../lib/linux-kbuild-*): they resolve
    # inside our tree. modules.dep is made by depmod at install time, so make it here.
    run(["depmod", "-b", str(k.modules_base), release])
    for path in (k.vmlinux, k.vmlinuz, k.headers / ".config", k.modules_dir / "modules.dep"):
        if not path.exists():
            raise LabError(f"{release}: {path} missing after unpack")
    write_json(k.stamp, {"debian_version": k.debian_version, "packages": pkgs})
    shutil.rmtree(debs, ignore_errors=True)
    return k


def fix_headers_makefile(k):
    """The headers' Makefile names the -common tree (and, from 7.x, KBUILD_OUTPUT) by absolute
    path under /usr/src: point them at ours. Idempotent."""
    makefile = k.headers / "Makefile"
    text = makefile.read_text()
    fixed = re.sub(r"^(include |KBUILD_OUTPUT=)/usr/src/", rf"\g<1>{k.dir}/usr/src/", text,
                   flags=re.M)
    if fixed != text:
        makefile.write_text(fixed)


# Modules the guests load besides kdive_lab, where the flavour has them as modules (not
# built in): qemu_fw_cfg gives QEMU's -device vmcoreinfo the guest's VMCOREINFO (without it
# QEMU's dumps carry none); nvme is the capture kernel's disk (a module on generic and rt).
GUEST_MODULES = (("CONFIG_FW_CFG_SYSFS", "qemu_fw_cfg"), ("CONFIG_BLK_DEV_NVME", "nvme"))


def guest_modules(k):
    """The .ko files (image package) the guests load, dependencies first."""
    loaded = []
    for config, name in GUEST_MODULES:
        if k.config(config) != "m":
            continue
        ko, deps = module_path(k, name)
        if ko is None:
            raise LabError(f"{k.release}: {name}.ko not found in modules.dep")
        for m in deps[::-1] + [ko]:
            if m not in loaded:
                loaded.append(m)
    return loaded


def prune_debug_modules(k):
    """generic and rt ship debug info for ~4000 modules (6.1 GB unpacked): keep only the
    modules a lab guest loads (GUEST_MODULES, USERLAND_MODULES and their dependencies).
    Idempotent."""
    stamp = k.dir / ".kdive-pruned"
    if not k.spec.prune_debug_modules or stamp.exists():
        return
    keep = {m.name.split(".ko")[0] for m in guest_modules(k) + userland_modules(k)}
    removed = 0
    for ko in list((k.debug_modules_dir / "kernel").rglob("*.ko*")):
        if ko.name.split(".ko")[0] not in keep:
            ko.unlink()
            removed += 1
    write_json(stamp, {"kept": sorted(keep), "removed": removed})
    log(f"{k.series}: kept the debug info of {len(keep)} modules ({', '.join(sorted(keep))}), "
        f"removed {removed}")


def debug_module_path(k, ko):
    """The -dbg package's file of an image package's module (.ko, .ko.xz, ...)."""
    rel = ko.relative_to(k.modules_dir)
    return k.debug_modules_dir / rel.parent / (rel.name.split(".ko")[0] + ".ko")


def restore_debug_modules(k, apt, root):
    """Kernels pruned before USERLAND_MODULES were kept (prune_debug_modules) lack their
    debug info: take those files again from the -dbg package. Idempotent."""
    if not k.spec.prune_debug_modules:
        return
    missing = [debug_module_path(k, m) for m in userland_modules(k)
               if not debug_module_path(k, m).exists()]
    if not missing:
        return
    pkg = f"linux-image-{k.release}-dbg={k.debian_version}"
    log(f"{k.series}: restoring the debug info of {len(missing)} modules from {pkg}")
    debs = root / "debs" / f"{k.dir.name}-dbg"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    try:
        apt.get("download", pkg, cwd=debs, timeout=1800)
        deb = next(debs.glob("*.deb"))
        members = ["./" + str(p.relative_to(k.dir)) for p in missing]
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        run(["tar", "-x", "-C", str(k.dir), *members], stdin=tar.stdout, timeout=900)
        tar.wait(timeout=60)
    finally:
        shutil.rmtree(debs, ignore_errors=True)
    for p in missing:
        if not p.exists():
            raise LabError(f"{k.release}: {p} not in {pkg}")


def index_vmlinux(k):
    """Adds a .gdb_index to the vmlinux: halves the startup of every crash oracle run
    (crash's gdb otherwise scans all DWARF). Harmless for other readers."""
    stamp = k.dir / ".kdive-gdb-index"
    if stamp.exists():
        return
    log(f"{k.series}: gdb-add-index {k.vmlinux.name}")
    try:
        # gdb-add-index writes the index with objcopy: the host's reads x86_64 files only.
        run(["gdb-add-index", str(k.vmlinux)], timeout=900,
            env={**os.environ, "OBJCOPY": k.spec.a.tool("objcopy")})
        stamp.write_text("indexed\n")
    except LabError as e:
        # Only slower without it; say so once and go on.
        stamp.write_text(f"not indexed: {e}\n")
        log(f"{k.series}: gdb-add-index failed, crash will start slower: {e}")


def module_path(k, name):
    """Path of an in-tree module (.ko or .ko.xz) of the kernel package, from modules.dep."""
    dep = (k.modules_dir / "modules.dep").read_text()
    for line in dep.splitlines():
        path, _, deps = line.partition(":")
        stem = Path(path).name.split(".ko")[0]
        if stem.replace("-", "_") == name.replace("-", "_"):
            return k.modules_dir / path, [k.modules_dir / d for d in deps.split()]
    return None, []


def build_module(k, root, sid):
    src_files = sorted((LAB_SRC / "module").glob("*"))
    key = sha256_files(src_files, extra=k.abi + k.release)
    out = k.dir / "kdive_lab"
    ko = out / "kdive_lab.ko"
    stamp = out / ".kdive-key"
    # Debian builds its kernels with the gcc named in CONFIG_CC_VERSION_TEXT (gcc-12 for
    # bookworm, gcc-10 for bullseye, gcc-16 for sid); the headers' .kernelvariables select it.
    cc = (k.config("CONFIG_CC_VERSION_TEXT") or "gcc").split(" ")[0]
    fix_headers_makefile(k)
    make = ["make", "-C", str(k.headers), f"M={out}", "modules"]
    a = k.spec.a
    if not a.native:
        # A cross build: the headers' kbuild tools (linux-kbuild-*) are the host's (amd64).
        # (Debian builds 6.1 arm64 natively, gcc-12, and 6.12 crossed, aarch64-linux-gnu-gcc-12.)
        if not cc.startswith(a.cross_compile):
            cc = a.cross_compile + cc
        make += [f"ARCH={a.kbuild_arch}", f"CROSS_COMPILE={a.cross_compile}", f"CC={cc}"]
        if not shutil.which(cc):
            raise LabError(f"{k.release} needs {cc} (gcc-aarch64-linux-gnu)")
    elif k.spec.sid_build:
        # sid's compiler and kbuild tools need sid's glibc: build in the sid root.
        if sid is None:
            raise LabError(f"{k.release}: its module is built in the sid root (debootstrap)")
        make = sid_cmd(root, sid, out, make)
    elif not shutil.which(cc):
        if not k.spec.cc_fallback:
            raise LabError(f"{k.release} was built with {cc}, which is not installed")
        # bullseye's gcc-10 is not installable on bookworm: build with gcc-12 (kbuild warns).
        cc = k.spec.cc_fallback
        make += [f"CC={cc}"]
    k.module_cc = cc
    if ko.exists() and stamp.exists() and stamp.read_text().strip() == key:
        k.module_ko = ko
        return key
    log(f"{k.series}: building kdive_lab.ko against {k.release} ({cc})")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for f in src_files:
        shutil.copy(f, out / f.name)
    proc = run(make, timeout=600)
    (out / "build.log").write_text(proc.stdout + proc.stderr)
    if not ko.exists():
        raise LabError("module build produced no kdive_lab.ko")
    stamp.write_text(key + "\n")
    k.module_ko = ko
    return key


def copy_module(src, dest_dir):
    """Copies a .ko into the initramfs, decompressing .ko.xz/.ko.zst (busybox insmod can't)."""
    name = src.name.split(".ko")[0] + ".ko"
    dest = dest_dir / name
    if src.name.endswith(".xz"):
        dest.write_bytes(run_bytes(["xz", "-dc", str(src)]))
    elif src.name.endswith(".zst"):
        dest.write_bytes(run_bytes(["zstd", "-dc", str(src)]))
    else:
        shutil.copy(src, dest)
    return dest


def run_bytes(cmd):
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise LabError(f"exit {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


# A foreign guest's programs (busybox, kexec) and the libraries kexec links, as
# (package, suite): Debian's packages of that architecture, unpacked under
# tools/guest-<deb_arch>/ (GuestUserland). kexec-tools is sid's (2.0.32): bookworm's 2.0.25
# finds no `_text` in arm64's /proc/kallsyms and writes a "kernel text" PT_LOAD of 2^64 -
# 0x5870... bytes into the ELF core header, so /proc/vmcore's size is negative and reading it
# ends in a synchronous external abort in the capture kernel.
GUEST_PACKAGES = [("busybox-static", "bookworm")] + [
    (p, "sid") for p in ("kexec-tools", "libc6", "zlib1g", "libxenmisc4.20", "libxentoollog1",
                         "libxencall1", "libxenevtchn1", "libxengnttab1", "libxenforeignmemory1",
                         "libxendevicemodel1", "libxentoolcore1")]


class GuestUserland:
    """The guest's busybox and kexec and where their shared libraries come from: the host's own
    for x86_64 guests (ldd), Debian 12's packages of the guest's architecture otherwise (their
    ELF DT_NEEDED and interpreter, looked up in the unpacked packages)."""

    def __init__(self, arch, sysroot=None):
        self.arch = arch
        self.sysroot = sysroot
        if sysroot is None:
            self.busybox = Path("/bin/busybox")
            self.kexec = Path(shutil.which("kexec") or "/usr/sbin/kexec")
        else:
            self.busybox = sysroot / "bin/busybox"
            # (sid's packages install into /usr: merged /usr)
            self.kexec = next((p for p in (sysroot / "sbin/kexec", sysroot / "usr/sbin/kexec")
                               if p.exists()), sysroot / "sbin/kexec")

    def shared_libs(self, binary):
        """[(file on the host, its path in the guest)] of what `binary` loads."""
        if self.sysroot is None:
            out = run(["ldd", str(binary)]).stdout
            return [(lib, lib) for lib in sorted(set(re.findall(r"(/\S+\.so[^\s]*)", out)))]
        found = {}
        todo = [binary]
        while todo:
            elf = todo.pop()
            out = run([self.arch.tool("readelf"), "-d", "-l", str(elf)]).stdout
            interp = re.findall(r"Requesting program interpreter: (/\S+)\]", out)
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)
            wanted = [(p, p) for p in interp]
            dirs = [f"{d}/{self.arch.name}-linux-gnu" for d in ("lib", "usr/lib")] + \
                ["lib", "usr/lib"]
            for name in needed:
                guest = next((f"/{d}/{name}" for d in dirs
                              if (self.sysroot / d / name).exists()), None)
                if guest is None:
                    raise LabError(f"{elf.name}: {name} is in none of {GUEST_PACKAGES}")
                wanted.append((guest, guest))
            for guest, _ in wanted:
                if guest not in found:
                    # Copied as files: the guest needs no symlinks.
                    found[guest] = self.resolve(guest)
                    todo.append(found[guest])
        return sorted((str(host), guest) for guest, host in found.items())

    def resolve(self, guest_path):
        """The file a guest path names in the sysroot, its symlinks followed inside it; /lib
        is /usr/lib (sid's packages install into /usr, and base-files' symlinks are not
        unpacked)."""
        path = self.in_sysroot(guest_path)
        for _ in range(16):
            if not path.is_symlink():
                return path
            target = os.readlink(path)
            path = self.in_sysroot(target) if target.startswith("/") else path.parent / target
        raise LabError(f"{guest_path}: symlink loop in {self.sysroot}")

    def in_sysroot(self, guest_path):
        path = self.sysroot / guest_path.lstrip("/")
        merged = self.sysroot / "usr" / guest_path.lstrip("/")
        return merged if not os.path.lexists(path) and os.path.lexists(merged) else path


def ensure_guest_userland(root, apt, arch):
    """The guest programs of `arch` (GuestUserland): the host's for x86_64; else GUEST_PACKAGES
    for its architecture (`apt-get download PKG:ARCH/SUITE`), unpacked once into
    tools/guest-<deb_arch>/root (a stamp lists the .debs)."""
    if arch.native:
        return GuestUserland(arch)
    base = root / "tools" / f"guest-{arch.deb_arch}"
    sysroot = base / "root"
    stamp = base / ".kdive-ok"
    want = " ".join(f"{p}/{suite}" for p, suite in GUEST_PACKAGES)
    if stamp.exists() and stamp.read_text().split("\n")[0] == want:
        return GuestUserland(arch, sysroot)
    log(f"{arch.name}: downloading the guest's {want}")
    shutil.rmtree(base, ignore_errors=True)
    debs = base / "debs"
    debs.mkdir(parents=True)
    apt.get("download", *(f"{p}:{arch.deb_arch}/{suite}" for p, suite in GUEST_PACKAGES),
            cwd=debs, timeout=900)
    names = sorted(d.name for d in debs.glob("*.deb"))
    for deb in names:
        run(["dpkg-deb", "-x", str(debs / deb), str(sysroot)], timeout=300)
    shutil.rmtree(debs)
    stamp.write_text(want + "\n" + "\n".join(names) + "\n")
    return GuestUserland(arch, sysroot)


def make_cpio(tree, dest):
    files = run(["find", ".", "-mindepth", "1"], cwd=tree).stdout
    with open(dest, "wb") as out:
        proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=tree,
                              input=files.encode(), stdout=out, timeout=300)
    if proc.returncode != 0:
        raise LabError(f"cpio failed for {tree}")


def text_offset(k):
    """The vmlinux's _stext - _text (arm64: 64 KiB of head text)."""
    syms = dict((f[2], int(f[0], 16)) for f in map(str.split, run(
        [k.spec.a.tool("nm"), str(k.vmlinux)], timeout=300).stdout.splitlines())
        if len(f) == 3 and f[2] in ("_text", "_stext"))
    return syms["_stext"] - syms["_text"]


def build_initramfs(k, module_key, guest):
    """main.cpio (crashing kernel) and capture.cpio (kdump capture kernel, also inside main)."""
    init = LAB_SRC / "initramfs" / "init"
    kexec = guest.kexec
    a = k.spec.a
    # arm64: /sbin/kexec is lab/initramfs/kexec-text, which gives kexec-tools the `_text`
    # that the cloud kernel's /proc/kallsyms lacks (its offset from _stext, from the vmlinux).
    wrapper = [] if a.native else [LAB_SRC / "initramfs" / "kexec-text"]
    key = sha256_files([init, kexec, guest.busybox, *wrapper],
                       extra=module_key + str(LAB_FORMAT) + ("" if a.native else a.name))
    out = k.dir / "initramfs"
    stamp = out / ".kdive-key"
    k.initramfs = out / "main.cpio"
    k.capture_initramfs = out / "capture.cpio"
    if stamp.exists() and stamp.read_text().strip() == key and k.initramfs.exists():
        return key
    log(f"{k.series}: building initramfs")
    shutil.rmtree(out, ignore_errors=True)
    tree = out / "tree"
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "boot", "lib/modules/deps"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(guest.busybox, tree / "bin/busybox")
    text = init.read_text()
    if a.console != "ttyS0":
        # The capture kernel's console (init names x86's ttyS0): the same script otherwise.
        if "console=ttyS0 " not in text:
            raise LabError(f"{init}: no console=ttyS0 to make console={a.console}")
        text = text.replace("console=ttyS0 ", f"console={a.console} ")
    (tree / "init").write_text(text)
    os.chmod(tree / "init", 0o755)
    # Modules both kernels load first (init: /lib/modules/deps/*.ko in name order).
    for i, m in enumerate(guest_modules(k)):
        copied = copy_module(m, tree / "lib/modules/deps")
        copied.rename(copied.with_name(f"{i:02d}-{copied.name}"))
    make_cpio(tree, k.capture_initramfs)
    copy_module(k.module_ko, tree / "lib/modules")
    if wrapper:
        shutil.copy(kexec, tree / "sbin/kexec.bin")
        shutil.copy(wrapper[0], tree / "sbin/kexec")
        os.chmod(tree / "sbin/kexec", 0o755)
        (tree / "boot/text-offset").write_text(f"{text_offset(k)}\n")
    else:
        shutil.copy(kexec, tree / "sbin/kexec")
    for lib, in_guest in guest.shared_libs(kexec):
        dest = tree / in_guest.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, dest)
    shutil.copy(k.vmlinuz, tree / "boot/vmlinuz")
    shutil.copy(k.capture_initramfs, tree / "boot/capture.cpio")
    make_cpio(tree, k.initramfs)
    shutil.rmtree(tree)
    stamp.write_text(key + "\n")
    return key


def build_busy(root, arch):
    """lab/userland/busy.c -> a static kdive-busy (gcc -static: glibc's static libc6-dev; for
    arm64 aarch64-linux-gnu-gcc and libc6-dev-arm64-cross), once per source and compiler."""
    src = LAB_SRC / "userland" / "busy.c"
    cc = "gcc" if arch.native else f"{arch.cross_compile}gcc"
    gcc = run([cc, "--version"]).stdout.splitlines()[0]
    key = sha256_files([src], extra=gcc)
    out = root / "tools" / "kdive-busy" / key
    binary = out / "kdive-busy"
    if binary.exists():
        return binary, key
    log(f"building kdive-busy ({gcc})")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "kdive-busy.tmp"
    run([cc, "-static", "-O2", "-pthread", "-Wall", "-o", str(tmp), str(src)], timeout=300)
    tmp.rename(binary)
    return binary, key


def userland_modules(k):
    """USERLAND_MODULES' .ko files (image package), dependencies first, without the ones the
    lab's /init loads already (guest_modules)."""
    have = set(guest_modules(k))
    loaded = []
    for config, name in USERLAND_MODULES:
        if k.config(config) != "m":
            continue
        ko, deps = module_path(k, name)
        if ko is None:
            continue
        for m in deps[::-1] + [ko]:
            if m not in loaded and m not in have:
                loaded.append(m)
    return loaded


def build_userland_initramfs(k, root, main_key, mdf, scale):
    """userland.cpio: main.cpio with lab/userland/ appended (rdinit=/kdive/init, userland.sh,
    kdive-busy, the USERLAND_MODULES); with `scale` also scale.cpio, whose /boot/capture.cpio
    is the lab's with lab/userland/capture-init as /init and makedumpfile 1.7.9 (and its
    libraries) appended. A later cpio archive's files replace an earlier one's (the kernel
    unpacks them in order, truncating). main.cpio is untouched: the other scenarios keep their
    cache keys."""
    busy, busy_key = build_busy(root, k.spec.a)
    files = [LAB_SRC / "userland" / n for n in ("init", "userland.sh", "capture-init")]
    modules = userland_modules(k)
    key = sha256_files(files, extra=main_key + busy_key + str(LAB_FORMAT) +
                       " ".join(m.name for m in modules))
    out = k.dir / "initramfs-userland"
    stamp = out / ".kdive-key"
    k.userland_initramfs = out / "userland.cpio"
    k.scale_initramfs = out / "scale.cpio" if scale else None
    if stamp.exists() and stamp.read_text().strip() == key and k.userland_initramfs.exists() \
            and (not scale or k.scale_initramfs.exists()):
        return key
    log(f"{k.series}: building the userland initramfs" + (" (and scale's)" if scale else ""))
    shutil.rmtree(out, ignore_errors=True)
    tree = out / "tree"
    for d in ("kdive/modules", "bin", "dev"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    # ash runs a background job with stdin from /dev/null: /kdive/init's comes before the
    # lab's /init mounts devtmpfs over /dev.
    os.mknod(tree / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for f, dest in ((files[0], "kdive/init"), (files[1], "kdive/userland.sh"),
                    (busy, "bin/kdive-busy")):
        shutil.copy(f, tree / dest)
        os.chmod(tree / dest, 0o755)
    for i, m in enumerate(modules):
        copied = copy_module(m, tree / "kdive/modules")
        copied.rename(copied.with_name(f"{i:02d}-{copied.name}"))
    overlay = out / "overlay.cpio"
    make_cpio(tree, overlay)
    main = k.initramfs.read_bytes()
    k.userland_initramfs.write_bytes(main + overlay.read_bytes())
    if scale:
        ctree = out / "capture-tree"
        (ctree / "sbin").mkdir(parents=True)
        shutil.copy(files[2], ctree / "init")
        os.chmod(ctree / "init", 0o755)
        shutil.copy(mdf, ctree / "sbin/makedumpfile")
        for lib, in_guest in GuestUserland(k.spec.a).shared_libs(mdf):
            dest = ctree / in_guest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lib, dest)
        make_cpio(ctree, out / "capture-overlay.cpio")
        stree = out / "scale-tree"
        (stree / "boot").mkdir(parents=True)
        (stree / "boot/capture.cpio").write_bytes(
            k.capture_initramfs.read_bytes() + (out / "capture-overlay.cpio").read_bytes())
        make_cpio(stree, out / "scale-overlay.cpio")
        k.scale_initramfs.write_bytes(main + overlay.read_bytes() +
                                      (out / "scale-overlay.cpio").read_bytes())
        for t in (ctree, stree):
            shutil.rmtree(t)
        for f in ("capture-overlay.cpio", "scale-overlay.cpio"):
            (out / f).unlink()
    shutil.rmtree(tree)
    overlay.unlink()
    stamp.write_text(key + "\n")
    return key


# ---------------------------------------------------------------- QEMU

class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise LabError(f"QMP socket {path} never came up")
                time.sleep(0.1)
        self.buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LabError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise LabError(f"QMP {cmd}: {reply['error']}")
            return reply.get("return")

    def close(self):
        self.sock.close()


def guest_cpu(arch, la57):
    """QEMU's -cpu: x86_64 guests run 4-level paging unless la57; arm64's max has LPA2 (52-bit
    VA for the kernels built for it)."""
    if not arch.native:
        return "max"
    return "max" if la57 else "max,la57=off"


class Guest:
    """One QEMU guest; always killed when the with-block ends."""

    def __init__(self, k, run_dir, append, la57=False, disk=None, memory_mb=None, initramfs=None,
                 virtio_disks=()):
        self.run_dir = run_dir
        self.console = run_dir / "console.log"
        self.qmp_path = run_dir / "qmp.sock"
        a = k.spec.a
        cpu = guest_cpu(a, la57)
        self.cmd = [a.qemu, *a.machine, "-accel", "tcg", "-cpu", cpu,
                    "-smp", str(GUEST_CPUS), "-m", f"{memory_mb or k.spec.memory_mb}M",
                    "-display", "none", "-monitor", "none", "-no-reboot",
                    "-serial", f"file:{self.console}", "-device", "vmcoreinfo",
                    "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                    "-kernel", str(k.vmlinuz), "-initrd", str(initramfs or k.initramfs),
                    "-append", append]
        if disk:
            self.cmd += ["-drive", f"file={disk},if=none,id=dump,format=raw",
                         "-device", "nvme,drive=dump,serial=kdive-dump"]
        for extra in virtio_disks:
            self.cmd += ["-drive", f"file={extra},if=virtio,format=raw"]
        self.proc = None

    def __enter__(self):
        for p in (self.console, self.qmp_path):
            p.unlink(missing_ok=True)
        (self.run_dir / "qemu.cmd").write_text(" ".join(self.cmd) + "\n")
        self.stderr = open(self.run_dir / "qemu.stderr", "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        with LIVE_LOCK:
            LIVE_QEMUS.add(self.proc)
        return self

    def __exit__(self, *exc):
        kill_qemu(self.proc)
        self.stderr.close()
        self.qmp_path.unlink(missing_ok=True)

    def console_text(self):
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_console(self, pattern, timeout, fail_patterns=()):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            text = self.console_text()
            if rx.search(text):
                return text
            for fp in fail_patterns:
                if re.search(fp, text):
                    raise LabError(f"guest console shows {fp!r}; see {self.console}")
            if self.proc.poll() is not None:
                raise LabError(f"QEMU exited ({self.proc.returncode}) before {pattern!r}; "
                               f"see {self.console} and {self.run_dir / 'qemu.stderr'}")
            time.sleep(0.2)
        raise LabError(f"timeout ({timeout}s) waiting for {pattern!r} in {self.console}")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise LabError(f"QEMU still running after {timeout}s; see {self.console}") from e


def kill_qemu(proc):
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with LIVE_LOCK:
        LIVE_QEMUS.discard(proc)


def kill_all_qemus(*_):
    """Signal handler: the worker threads cannot be interrupted, so kill the guests and leave."""
    with LIVE_LOCK:
        procs = list(LIVE_QEMUS)
    for p in procs:
        if p.poll() is None:
            p.kill()
    log("interrupted: guests killed")
    os._exit(130)


def qemu_dump(qmp, dest, fmt):
    dest.unlink(missing_ok=True)
    qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{dest}", format=fmt,
                detach=True)
    deadline = time.monotonic() + DUMP_TIMEOUT_S
    while time.monotonic() < deadline:
        status = qmp.execute("query-dump")
        if status["status"] == "completed":
            return
        if status["status"] == "failed":
            raise LabError(f"dump-guest-memory {fmt} failed")
        time.sleep(0.2)
    raise LabError(f"dump-guest-memory {fmt} timed out")


PANIC_DONE = r"---\[ end Kernel panic"
GUEST_FAILURES = (r"KDIVE: kexec -p failed", r"KDIVE: vmcore copy failed",
                  r"KDIVE: still alive after scenario", r"KDIVE: userland setup failed")


def kernel_cmdline(scenario, kdump, crashkernel_mb=CRASHKERNEL_MB, console="ttyS0"):
    parts = [f"console={console}", "oops=panic", "panic=0", f"kdive.scenario={scenario}"]
    if scenario in USERLAND_SCENARIOS:
        parts.append("rdinit=/kdive/init")
    if scenario == "hung":
        parts.append("hung_task_panic=1")
    if scenario == "nmi":
        # An NMI no handler claims panics: the panic then runs on the NMI exception stack.
        parts.append("unknown_nmi_panic")
    if kdump:
        parts += [f"crashkernel={crashkernel_mb}M", "kdive.kdump=1"]
    return " ".join(parts)


def trigger_from_host(g, c):
    """Scenarios the host starts: `nmi` injects an NMI (QMP inject-nmi) a second after init
    says it is crashing (its `*)` case loads the test module with mode=none, then sleeps).
    Where the NMI lands does not matter: no handler claims it, so the kernel panics."""
    if c.scenario != "nmi":
        return
    g.wait_console(r"KDIVE: crashing, scenario=nmi", BOOT_TIMEOUT_S, GUEST_FAILURES)
    time.sleep(1)
    qmp = Qmp(g.qmp_path)
    try:
        qmp.execute("inject-nmi")
    finally:
        qmp.close()


# ---------------------------------------------------------------- runs and dumps

class Crash:
    """One crash event (one boot): its directory, and the dumps made from it."""

    def __init__(self, root, k, scenario, capture, la57):
        self.root = root
        self.k = k
        self.scenario = scenario
        self.capture = capture
        self.la57 = la57
        suffix = "" if capture == "kdump" else "-qemu"
        if la57:
            suffix += "-la57"
        self.crash_id = f"{k.series}-{scenario}{suffix}"
        self.dir = root / "runs" / self.crash_id
        self.full_matrix = scenario == FULL_MATRIX_SCENARIO and not la57
        self.userland = scenario in USERLAND_SCENARIOS
        self.scale = scenario == "scale"
        self.memory_mb = SCALE_MEMORY_MB if self.scale else k.spec.memory_mb
        self.crashkernel_mb = SCALE_CRASHKERNEL_MB if self.scale else CRASHKERNEL_MB
        # The userland scenarios boot main.cpio with lab/userland/ appended (scale: and its
        # capture kernel's initramfs replaced).
        self.initramfs = (k.scale_initramfs if self.scale else k.userland_initramfs) \
            if self.userland else k.initramfs
        self.manifests = []
        # makedumpfile's refusals (1.7.9 on 7.x: "kernel version is not supported").
        self.convert_errors = {}
        # What the userland guest said it holds (parse_userland), once booted.
        self.userland_facts = None

    def guest(self, kdump, disk=None):
        """The QEMU guest of this crash event (the userland scenario's gets its extra disks)."""
        disks = []
        if self.scenario == "userland":
            for name, mib in USERLAND_DISKS:
                path = self.dir / f"{name}.img"
                path.unlink(missing_ok=True)
                with open(path, "wb") as f:
                    f.truncate(mib << 20)
                disks.append(path)
        return Guest(self.k, self.dir, kernel_cmdline(self.scenario, kdump, self.crashkernel_mb,
                                                      self.k.spec.a.console),
                     la57=self.la57, disk=disk, memory_mb=self.memory_mb,
                     initramfs=self.initramfs, virtio_disks=disks)

    def booted(self, console_text):
        """After the boot: what the userland said (the crashed kernel's part of the console);
        the extra disks are deleted (the dumps are made from memory, not from them)."""
        if self.userland:
            self.userland_facts = parse_userland(console_text)
        for name, _ in USERLAND_DISKS:
            (self.dir / f"{name}.img").unlink(missing_ok=True)

    def dump_dir(self, fmt_name):
        d = self.root / "dumps" / f"{self.crash_id}.{fmt_name}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def manifest(self, fmt_name, files, fmt, compression, dump_level, dmesg=None,
                 truncated=False, notes=None):
        m = {
            "name": f"{self.crash_id}.{fmt_name}",
            "crash_id": self.crash_id,
            "scenario": self.scenario,
            "kernel": {
                "series": self.k.series,
                "package_version": self.k.abi,
                "debian_version": self.k.debian_version,
                "release": self.k.release,
                "vmlinux": str(self.k.vmlinux),
                "modules_dir": str(self.k.debug_modules_dir),
                "image_modules_dir": str(self.k.modules_dir),
                "kernel_directory": str(self.k.dir),
                "test_module": str(self.k.module_ko),
                "flavour": self.k.spec.flavour,
                "test_module_cc": self.k.module_cc,
                "arch": self.k.spec.arch,
            },
            "capture": self.capture,
            "format": fmt,
            "compression": compression,
            "dump_level": dump_level,
            "truncated": truncated,
            "files": [str(f) for f in files],
            "console_log": str(self.dir / "console.log"),
            "dmesg": str(dmesg) if dmesg else None,
            "oracle": {"crash": None, "crash9": None, "drgn": None},
            "oracle_errors": {},
            "oracle_versions": {},
            "convert_errors": dict(self.convert_errors),
            "convert_warnings": {},
            "guest": {"memory_mb": self.memory_mb, "cpus": GUEST_CPUS,
                      "cpu": guest_cpu(self.k.spec.a, self.la57),
                      "paging_levels": self.k.paging_levels(self.la57),
                      "crashkernel_mb": self.crashkernel_mb if self.capture == "kdump" else None},
            "file_sizes": [f.stat().st_size for f in files],
            "notes": notes,
        }
        if self.userland:
            m["userland"] = self.userland_facts
        self.manifests.append(m)
        return m


PANIC_START = r"Kernel panic - not syncing"
# How long after "Kernel panic - not syncing" a QEMU capture waits for the end line.
PANIC_END_WAIT_S = 20


# QMP stops until the panicking CPU is not in an interrupt handler: arm64's panic() loops with
# IRQs enabled, so a stop can land in the timer interrupt.
STOP_ATTEMPTS = 20
PSTATE_I = 0x80  # PSTATE.DAIF's I: IRQs masked (set in an IRQ handler; clear in panic's loop)


def stop_outside_irq(qmp, console):
    """After a QMP stop of an arm64 guest: while the CPU that panicked (the console's last
    "CPU: N [UID: U ]PID:" line) has IRQs masked, it is in an interrupt handler (the timer's) rather
    than in panic()'s loop: continue and stop again. Returns a note for the manifest."""
    # (6.12: "CPU: 1 UID: 0 PID: 150 Comm: ...")
    cpus = re.findall(r"CPU: (\d+) (?:UID: \d+ )?PID: ", console)
    if not cpus:
        return "; panicking CPU not named on the console: stopped once"
    cpu = int(cpus[-1])
    for attempt in range(1, STOP_ATTEMPTS + 1):
        regs = qmp.execute("human-monitor-command", **{"command-line": "info registers -a"})
        blocks = dict((int(n), b) for n, b in re.findall(r"CPU#(\d+)\s(.*?)(?=CPU#|\Z)", regs,
                                                          re.S))
        m = re.search(r"PSTATE=([0-9a-f]+)", blocks.get(cpu, ""))
        pc = re.search(r"PC=([0-9a-f]+)", blocks.get(cpu, ""))
        if m is None:
            return f"; CPU {cpu}'s PSTATE not found in 'info registers': stopped once"
        if not int(m.group(1), 16) & PSTATE_I:
            return "" if attempt == 1 else \
                (f"; stopped {attempt} times until CPU {cpu} (panicked) was outside an interrupt "
                 f"handler (PC {pc.group(1) if pc else '?'})")
        qmp.execute("cont")
        time.sleep(0.05 + 0.037 * attempt)
        qmp.execute("stop")
    return (f"; CPU {cpu} (panicked) was in an interrupt handler (PSTATE.I) at each of "
            f"{STOP_ATTEMPTS} stops: dumped at the last")


# The line the guest prints just before it crashes as its scenario says (lab/initramfs/init,
# lab/userland/userland.sh).
CRASH_PLANNED = r"KDIVE: (crashing, scenario=|userland crashing)"
# The first sign of a crash on a console.
CRASH_SIGNS = r"Kernel panic - not syncing|Oops|BUG:|WARNING:|general protection"
# Boots a crash event gets when the kernel crashes before its scenario does.
UNPLANNED_CRASH_ATTEMPTS = 3


def crashed_before_scenario(console_text):
    """Whether the console's first crash came before the guest said it was crashing: under TCG
    a kernel now and then oopses on its own while booting (6.12: int3 in
    sched_clock_idle_wakeup_event), and such a dump is not the scenario's."""
    first = re.search(CRASH_SIGNS, console_text)
    planned = re.search(CRASH_PLANNED, console_text)
    return first is not None and (planned is None or first.start() < planned.start())


def unplanned_crash(c, g, attempt):
    """After a boot that crashed before its scenario: keeps its console beside the run and
    says whether to boot again (else raises)."""
    saved = c.dir / f"console.attempt{attempt}.log"
    shutil.copy(g.console, saved)
    if attempt >= UNPLANNED_CRASH_ATTEMPTS:
        raise LabError(f"{c.crash_id}: the kernel crashed before its scenario in each of "
                       f"{attempt} boots (last console: {saved})")
    log(f"{c.crash_id}: the kernel crashed before its scenario (console: {saved}), "
        "booting again")


def run_qemu_crash(c, mdf):
    for attempt in range(1, UNPLANNED_CRASH_ATTEMPTS + 1):
        with c.guest(kdump=False) as g:
            trigger_from_host(g, c)
            g.wait_console(PANIC_START, BOOT_TIMEOUT_S, GUEST_FAILURES)
            if not crashed_before_scenario(g.console_text()):
                dump_qemu_guest(c, g)
                break
            unplanned_crash(c, g, attempt)
    finish_qemu_dumps(c, mdf)


def dump_qemu_guest(c, g):
    """After its panic: the paused guest's memory in QEMU's formats, and their manifests."""
    late = ""
    try:
        g.wait_console(PANIC_DONE, PANIC_END_WAIT_S, GUEST_FAILURES)
    except LabError:
        # 5.10's NMI panic (QEMU's inject-nmi hits both CPUs) prints "Kernel Offset" and
        # then nothing more: dump the quiet guest all the same, and say so.
        if g.proc.poll() is not None:
            raise
        late = (f"; no '---[ end Kernel panic' line {PANIC_END_WAIT_S}s after 'Kernel panic "
                "- not syncing': dumped then")
        log(f"{c.crash_id}: no end-of-panic line after {PANIC_END_WAIT_S}s, dumping anyway")
    time.sleep(0.5)
    qmp = Qmp(g.qmp_path)
    try:
        # Pause the guest: each format is then the same memory image, page for page.
        qmp.execute("stop")
        if not c.k.spec.a.native:
            late += stop_outside_irq(qmp, g.console_text())
        elf_dir = c.dump_dir("elf")
        qemu_dump(qmp, elf_dir / "vmcore.elf", "elf")
        if c.full_matrix:
            zlib_dir = c.dump_dir("kdump-zlib")
            qemu_dump(qmp, zlib_dir / "vmcore.kdump-zlib", "kdump-zlib")
    finally:
        qmp.close()
    c.booted(g.console_text())
    c.manifest("elf", [elf_dir / "vmcore.elf"], "elf", "none", 0,
               notes="QEMU dump-guest-memory format=elf, paging=false" + late)
    if c.full_matrix:
        zlib = zlib_dir / "vmcore.kdump-zlib"
        flat = zlib.read_bytes()[:16].startswith(b"makedumpfile")
        c.manifest("kdump-zlib", [zlib], "flattened" if flat else "kdump", "zlib", 0,
                   notes="QEMU dump-guest-memory format=kdump-zlib")


def finish_qemu_dumps(c, mdf):
    """The full matrix's QEMU kdump-zlib, flattened, rebuilt as a random-access file."""
    if c.full_matrix:
        zlib = c.dump_dir("kdump-zlib") / "vmcore.kdump-zlib"
        # QEMU writes kdump-zlib flattened; makedumpfile -R rebuilds the random-access file.
        d = c.dump_dir("kdump-zlib-rebuilt")
        out = d / "vmcore.kdump-zlib"
        out.unlink(missing_ok=True)
        with open(zlib, "rb") as src:
            run([str(mdf), "-R", str(out)], stdin=src, timeout=300)
        c.manifest("kdump-zlib-rebuilt", [out], "kdump", "zlib", 0,
                   notes="QEMU kdump-zlib rebuilt with makedumpfile -R")


def run_kdump_crash(c, mdf):
    disk = c.dir / "disk.img"
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate((c.k.spec.memory_mb + 64) << 20)
    for attempt in range(1, KDUMP_ATTEMPTS + 1):
        with c.guest(kdump=True, disk=disk) as g:
            try:
                trigger_from_host(g, c)
                g.wait_console(r"KDIVE: vmcore saved size=\d+",
                               SCALE_KDUMP_TIMEOUT_S if c.scale else KDUMP_TIMEOUT_S,
                               GUEST_FAILURES + (PANIC_DONE,))
            except LabError:
                if crashed_before_scenario(g.console_text()):
                    unplanned_crash(c, g, attempt)
                    continue
                # KASLR places the kernel at random: now and then it leaves no free window
                # for crashkernel= in a small guest, or one kexec cannot load into. Boot
                # again; anything else is fatal.
                if attempt < KDUMP_ATTEMPTS and \
                        any(sign in g.console_text() for sign in CRASHKERNEL_PLACEMENT_FAILURES):
                    log(f"{c.crash_id}: no room for crashkernel (KASLR), booting again")
                    shutil.copy(g.console, c.dir / f"console.attempt{attempt}.log")
                    continue
                raise
            g.wait_exit(60)
            text = g.console_text()
            if not crashed_before_scenario(text):
                break
            unplanned_crash(c, g, attempt)
    c.booted(text)
    if c.scale:
        return scale_kdump(c, mdf, disk, text)
    size = int(re.search(r"KDIVE: vmcore saved size=(\d+)", text).group(1))
    raw_dir = c.dump_dir("kdump-elf")
    raw = raw_dir / "vmcore"
    with open(disk, "r+b") as f:
        f.truncate(size)
    disk.replace(raw)
    # In the run directory: it outlives the raw vmcore, which only the full matrix keeps.
    dmesg = c.dir / "vmcore-dmesg.txt"
    try:
        run([str(mdf), "--dump-dmesg", str(raw), str(dmesg)], timeout=300)
    except LabError as e:
        # makedumpfile 1.7.9 refuses kernels newer than it knows (7.x): keep the raw dump.
        c.convert_errors["makedumpfile"] = str(e).strip()[-1500:]
        dmesg.unlink(missing_ok=True)
        dmesg = None
        log(f"{c.crash_id}: makedumpfile cannot read this kernel's dump; keeping the raw "
            "/proc/vmcore only")
        c.manifest("kdump-elf", [raw], "elf", "none", 0,
                   notes="raw /proc/vmcore copied by the capture kernel (makedumpfile failed: "
                         "no conversions)")
        return

    def convert(fmt_name, opts, fmt, compression, level, nfiles=1, flattened=False):
        d = c.dump_dir(fmt_name)
        outs = [d / (f"vmcore.{i + 1}" if nfiles > 1 else "vmcore") for i in range(nfiles)]
        for o in outs:
            o.unlink(missing_ok=True)
        if flattened:
            with open(outs[0], "wb") as f:
                p = subprocess.run([str(mdf), *opts, str(raw)], stdout=f,
                                   stderr=subprocess.PIPE, text=True, timeout=600)
            if p.returncode != 0:
                raise LabError(f"makedumpfile {opts} failed: {p.stderr[-1000:]}")
            said = p.stderr
        else:
            p = run([str(mdf), *opts, str(raw), *map(str, outs)], timeout=600)
            said = p.stdout + p.stderr
        m = c.manifest(fmt_name, outs, fmt, compression, level, dmesg=dmesg,
                       notes="upstream makedumpfile 1.7.9 " + " ".join(opts))
        # 1.7.9 on 7.x: "The kernel version is not supported. The makedumpfile operation
        # may be incomplete." and it goes on: keep the warning with the dump.
        warnings = [line.strip() for line in said.splitlines()
                    if "not supported" in line or "may be incomplete" in line]
        if warnings:
            m["convert_warnings"] = {"makedumpfile": " ".join(dict.fromkeys(warnings))}
        return outs

    zstd = convert("kdump-zstd-d31", ["-z", "-d", "31"], "kdump", "zstd", 31)
    if c.scenario == "userland":
        # Unfiltered: the user pages are there (vm -p, ps -a's arguments, swap cache).
        convert("kdump-zstd-d0", ["-z", "-d", "0"], "kdump", "zstd", 0)
    if c.full_matrix:
        c.manifest("kdump-elf", [raw], "elf", "none", 0, dmesg=dmesg,
                   notes="raw /proc/vmcore copied by the capture kernel")
        convert("kdump-zlib-d31", ["-c", "-d", "31"], "kdump", "zlib", 31)
        convert("kdump-lzo-d31", ["-l", "-d", "31"], "kdump", "lzo", 31)
        convert("kdump-snappy-d31", ["-p", "-d", "31"], "kdump", "snappy", 31)
        convert("kdump-none-d0", ["-d", "0"], "kdump", "none", 0)
        convert("kdump-zlib-d0", ["-c", "-d", "0"], "kdump", "zlib", 0)
        convert("flattened-lzo-d31", ["-F", "-l", "-d", "31"], "flattened", "lzo", 31,
                flattened=True)
        convert("split-zstd-d31", ["--split", "-z", "-d", "31"], "split", "zstd", 31, nfiles=3)
        convert("elf-d31", ["-E", "-d", "31"], "elf", "none", 31)
        # A dump cut at 60%, as left by a full disk or an interrupted copy.
        d = c.dump_dir("kdump-zstd-d31-truncated")
        cut = d / "vmcore"
        whole = zstd[0].read_bytes()
        cut.write_bytes(whole[: len(whole) * 6 // 10])
        c.manifest("kdump-zstd-d31-truncated", [cut], "kdump", "zstd", 31, dmesg=dmesg,
                   truncated=True, notes=f"first 60% ({len(whole) * 6 // 10} of {len(whole)} "
                                         "bytes) of the kdump-zstd-d31 dump")
    else:
        shutil.rmtree(raw_dir)


def scale_kdump(c, mdf, disk, text):
    """The scale guest's capture kernel wrote makedumpfile -F -z -d 31 (flattened) to the disk:
    rebuild the kdump file with makedumpfile -R and drop the disk."""
    size = int(re.search(r"KDIVE: vmcore saved flattened size=(\d+)", text).group(1))
    with open(disk, "r+b") as f:
        f.truncate(size)
    d = c.dump_dir("kdump-zstd-d31")
    out = d / "vmcore"
    out.unlink(missing_ok=True)
    with open(disk, "rb") as src:
        run([str(mdf), "-R", str(out)], stdin=src, timeout=600)
    disk.unlink()
    dmesg = c.dir / "vmcore-dmesg.txt"
    run([str(mdf), "--dump-dmesg", str(out), str(dmesg)], timeout=300)
    m = re.search(r"KDIVE: makedumpfile in the capture kernel: ([\d.]+) - ([\d.]+) s", text)
    took = f" in {float(m.group(1)) - float(m.group(2)):.0f} s" if m else ""
    c.manifest("kdump-zstd-d31", [out], "kdump", "zstd", 31, dmesg=dmesg,
               notes="makedumpfile 1.7.9 -F -z -d 31 /proc/vmcore in the capture kernel" + took +
                     f" ({size} bytes flattened), rebuilt on the host with makedumpfile -R")


USERLAND_LINE = re.compile(r"KDIVE: userland pid=(\d+) role=(\S+) (.*)$")


def parse_userland(console):
    """What the userland guest said (lab/userland/busy.c, userland.sh), for the manifest's
    `userland`: {"processes": [{"pid", "role", "holds": [...]}] (one per pid, in order of
    first mention), "ready": the /proc/loadavg line before the crash, "mounts", "swaps"}."""
    procs = {}
    facts = {"processes": [], "ready": None, "swaps": None, "mounts": [], "errors": []}
    for line in console.splitlines():
        line = line.rstrip("\r")
        if (m := USERLAND_LINE.search(line)):
            pid, role, what = int(m.group(1)), m.group(2), m.group(3).strip()
            if pid not in procs:
                procs[pid] = {"pid": pid, "role": role, "holds": []}
                facts["processes"].append(procs[pid])
            if what != "ready":
                procs[pid]["holds"].append(what)
        elif (m := re.search(r"KDIVE: userland ready: (.*)$", line)):
            facts["ready"] = m.group(1).strip()
        elif (m := re.search(r"KDIVE: userland swaps: (.*)$", line)):
            facts["swaps"] = m.group(1).strip()
        elif (m := re.search(r"KDIVE: userland mount (.*)$", line)):
            facts["mounts"].append(m.group(1).strip())
        elif "KDIVE: insmod" in line or "FAILED" in line and "KDIVE: userland" in line:
            facts["errors"].append(line[line.index("KDIVE:"):])
    return facts


def run_crash(c, mdf, key):
    stamp = c.dir / ".kdive-done"
    if stamp.exists() and stamp.read_text().strip() == key:
        c.manifests = [json.loads((c.root / "dumps" / n / "manifest.json").read_text())
                       for n in json.loads((c.dir / "dumps.json").read_text())]
        return c
    shutil.rmtree(c.dir, ignore_errors=True)
    for old in (c.root / "dumps").glob(f"{c.crash_id}.*"):
        shutil.rmtree(old)
    c.dir.mkdir(parents=True)
    t0 = time.monotonic()
    log(f"{c.crash_id}: booting ({c.capture})")
    if c.capture == "qemu":
        run_qemu_crash(c, mdf)
    else:
        run_kdump_crash(c, mdf)
    for m in c.manifests:
        m["file_sizes"] = [Path(f).stat().st_size for f in m["files"]]
        write_json(c.root / "dumps" / m["name"] / "manifest.json", m)
    write_json(c.dir / "dumps.json", [m["name"] for m in c.manifests])
    stamp.write_text(key + "\n")
    log(f"{c.crash_id}: {len(c.manifests)} dumps in {time.monotonic() - t0:.0f}s")
    return c


# ---------------------------------------------------------------- oracles

CRASH_DIAGNOSES = {}
CRASH_DIAGNOSES_LOCK = threading.Lock()


def crash_diagnosis(m, cmdfile, out_dir):
    """crash -s says nothing when it gives up; crash -d1 tells why. Once per kernel and kind
    of dump: a second full crash run per dump costs too much for a repeated message."""
    kind = (m["kernel"]["vmlinux"], m["capture"], m["format"], m["truncated"])
    with CRASH_DIAGNOSES_LOCK:
        if kind in CRASH_DIAGNOSES:
            return f"crash -d1 on {CRASH_DIAGNOSES[kind][0]} said:\n{CRASH_DIAGNOSES[kind][1]}"
    try:
        proc = run(["crash", "-d1", "-i", str(cmdfile), m["kernel"]["vmlinux"], *m["files"]],
                   timeout=ORACLE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL, cwd=out_dir)
        said = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    except LabError as e:
        said = str(e)
    with CRASH_DIAGNOSES_LOCK:
        CRASH_DIAGNOSES[kind] = (m["name"], said)
    return f"crash -d1 says:\n{said}"


def crash_commands(m):
    """The crash commands of a dump's oracle: CRASH_COMMANDS; for the userland scenario also
    USERLAND_CRASH_COMMANDS and USERLAND_PID_COMMANDS for each process the console named;
    SCALE_CRASH_COMMANDS for scale."""
    if m["scenario"] == "scale":
        return list(SCALE_CRASH_COMMANDS)
    if m["scenario"] != "userland":
        return list(CRASH_COMMANDS)
    cmds = CRASH_COMMANDS + USERLAND_CRASH_COMMANDS
    for p in (m.get("userland") or {}).get("processes", []):
        for cmd in USERLAND_PID_COMMANDS["*"] + USERLAND_PID_COMMANDS.get(p["role"], []):
            cmds.append(f"{cmd} {p['pid']}")
    return cmds


def crash_output_name(cmd):
    """The file part of a crash command's output (`files 123` -> `files-123`,
    `task -R comm,state 5` -> `task-r-comm-state-5`): lab::crash_outputs' `command`."""
    return re.sub(r"[^a-z0-9]+", "-", cmd.lower()).strip("-")


def crash_oracle(m, out_dir, sid=None, root=None, commands=CRASH_COMMANDS, binary=None):
    """crash -s VMLINUX DUMP, one output file per command (crash's own `> file` redirect,
    relative to out_dir, so the directory can be renamed when done). Returns an error or None.
    With sid: crash 9 from the sid root (files crash9.*); with binary: that crash 9 on the
    host (the arm64 one, files crash9.*); else the machine's crash 8.0.2."""
    prefix = "crash9" if sid or binary else "crash"
    lines = []
    for cmd in commands:
        # (The same name as before for CRASH_COMMANDS: none has a capital.)
        fname = f"{prefix}.{crash_output_name(cmd)}.txt"
        lines.append(f"{cmd} > {fname}")
    lines.append("quit")
    cmdfile = out_dir / f"{prefix}.commands"
    cmdfile.write_text("\n".join(lines) + "\n")
    files = m["files"]
    args = ["-s", "-i", str(cmdfile), m["kernel"]["vmlinux"], *files]
    if binary:
        argv = [str(binary), *args]
    elif sid:
        argv = sid_crash_cmd(root, sid, out_dir, m["kernel"]["series"], args)
    else:
        argv = ["crash", *args]
    try:
        proc = run(argv, timeout=ORACLE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL,
                   cwd=out_dir)
        output = proc.stdout + proc.stderr
        rc = proc.returncode
    except LabError as e:
        output, rc = str(e), None
    session = out_dir / f"{prefix}.session.txt"
    session.write_text(output)
    sys_txt = out_dir / f"{prefix}.sys.txt"
    if not sys_txt.exists() or sys_txt.stat().st_size == 0:
        if not output.strip() and not sid and not binary:
            output = "(crash -s printed nothing) " + crash_diagnosis(m, cmdfile, out_dir)
            session.write_text(output)
        return f"{prefix} exit {rc}: {output.strip()[-1500:]}"
    return None


def run_drgn_script(script, m, out_dir, drgn_python, dest_name, extra=()):
    """SCRIPTS/script on the dump of manifest `m`, writing out_dir/dest_name (its log beside,
    the same name with .log for .json). Returns an error or None."""
    dest = out_dir / dest_name
    arch = m["kernel"]["arch"]
    # Another architecture's dump goes through drgn_arch.py (the platform of kdump files).
    wrapper = [] if arch == "x86_64" else [str(SCRIPTS / "drgn_arch.py"), arch]
    args = [str(drgn_python), *wrapper, str(SCRIPTS / script), "--output", str(dest),
            "--vmlinux", m["kernel"]["vmlinux"], "--kernel-directory",
            m["kernel"]["kernel_directory"], "--module", m["kernel"]["test_module"],
            *extra, *m["files"]]
    try:
        proc = run(args, timeout=ORACLE_TIMEOUT_S, check=False)
        output, rc = proc.stdout + proc.stderr, proc.returncode
    except LabError as e:
        output, rc = str(e), None
    (out_dir / dest_name.replace(".json", ".log")).write_text(output)
    if rc == 0 and dest.exists():
        return None
    return f"{Path(script).stem.replace('_oracle', '')} exit {rc}: {output.strip()[-1500:]}"


def drgn_oracle(m, out_dir, drgn_python):
    """drgn_oracle.py -> out_dir/drgn.json. Returns an error or None."""
    return run_drgn_script("drgn_oracle.py", m, out_dir, drgn_python, "drgn.json")


def drgn_procs_oracle(m, out_dir, drgn_python):
    """drgn_procs.py -> out_dir/drgn.procs.json (the userland scenarios: task counts, and the
    open files, VMAs and mounts of the processes the console named). Returns an error or None."""
    pids = [str(p["pid"]) for p in (m.get("userland") or {}).get("processes", [])]
    return run_drgn_script("drgn_procs.py", m, out_dir, drgn_python, "drgn.procs.json",
                           [a for pid in pids for a in ("--pid", pid)])


def run_oracles(root, name, drgn_python, sid, key, crash_arm64=None):
    """The oracles of one dump. x86_64: crash 8.0.2 (the host's), crash 9 (the sid root's) and
    drgn. aarch64: crash 9 built for ARM64 (crash_arm64: (binary, version) or None) and drgn;
    Debian's crash 8.0.2 and 9 read x86_64 dumps only."""
    mpath = root / "dumps" / name / "manifest.json"
    m = json.loads(mpath.read_text())
    arm64 = m["kernel"]["arch"] == "aarch64"
    out_dir = root / "dumps" / name / "oracle"
    commands = crash_commands(m)
    userland = m["scenario"] in USERLAND_SCENARIOS
    if userland:
        # The other scenarios' key stays as it was (drgn_procs.py is not part of it).
        key = sha256_files([SCRIPTS / "drgn_procs.py"], extra=key + repr(commands))
    stamp = out_dir / ".kdive-key"
    if stamp.exists() and stamp.read_text().strip() == key:
        return m
    # Work in oracle.tmp and swap it in at the end: readers never see a half-made oracle.
    tmp = out_dir.with_name("oracle.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.monotonic()
    # scale: drgn_oracle.py's stack of each of 10,000 tasks takes longer than ORACLE_TIMEOUT_S
    # on a loaded machine; drgn.procs.json counts the tasks.
    skipped = {"drgn": SCALE_DRGN_SKIPPED} if m["scenario"] == "scale" else {}
    if arm64:
        errors = {"crash": CRASH8_NOT_ARM64,
                  "crash9": crash_oracle(m, tmp, commands=commands, binary=crash_arm64[0])
                  if crash_arm64 else "not run (--no-crash9, or its ARM64 build failed)"}
    else:
        errors = {"crash": crash_oracle(m, tmp, commands=commands),
                  "crash9": crash_oracle(m, tmp, sid=sid, root=root, commands=commands) if sid
                  else "not run (--no-crash9)"}
    errors["drgn"] = None if "drgn" in skipped else drgn_oracle(m, tmp, drgn_python)
    if userland:
        errors["drgn_procs"] = drgn_procs_oracle(m, tmp, drgn_python)
    (tmp / ".kdive-key").write_text(key + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    m["oracle"] = {"crash": None if errors["crash"] else str(out_dir),
                   "crash9": None if errors["crash9"] else str(out_dir),
                   "drgn": None if errors["drgn"] or "drgn" in skipped
                   else str(out_dir / "drgn.json")}
    if skipped:
        m["oracle_skipped"] = skipped
    if userland:
        m["oracle"]["drgn_procs"] = None if errors["drgn_procs"] \
            else str(out_dir / "drgn.procs.json")
        # Each crash command and its output file's part (crash9.<output>.txt, crash.<output>.txt).
        m["oracle_commands"] = [{"command": c, "output": crash_output_name(c)} for c in commands]
    m["oracle_errors"] = {k: v for k, v in errors.items() if v}
    m["oracle_versions"] = {"crash": CRASH8_VERSION, "drgn": DRGN_VERSION}
    if arm64:
        del m["oracle_versions"]["crash"]
        if crash_arm64:
            m["oracle_versions"]["crash9"] = crash_arm64[1]
    elif sid:
        m["oracle_versions"]["crash9"] = sid_crash_version(sid)
    write_json(mpath, m)
    status = ", ".join(f"{k} failed" for k in m["oracle_errors"]) or "ok"
    log(f"{name}: oracles {status} ({time.monotonic() - t0:.0f}s)")
    return m


# ---------------------------------------------------------------- main

# ---------------------------------------------------------------- debuginfod

# The series whose vmlinux and module debug info kdive's debuginfod client is tested against:
# their real -dbg packages, served by Debian's debuginfod (kdive-testkit's DebuginfodServer).
DEBUGINFOD_SERIES = ("6.1", "6.12", "6.1-arm64")


def ensure_debuginfod_deb(root, apt, k):
    """Keeps the kernel's own linux-image-<release>-dbg=<version> .deb (not unpacked) under
    <root>/debuginfod/debs/, one per series, and a stamp <root>/debuginfod/<series>.json that
    says what the tests should find in it: the vmlinux's path and size in the .deb (its
    `dpkg-deb -c` listing; the lab's own vmlinux differs, gdb-add-index grew it) and the lab's
    unpacked vmlinux of the same build (its build id). Cached runs only read the stamp.
    Replacing a series' .deb drops debuginfod's index (kdive-testkit rebuilds it)."""
    base = root / "debuginfod"
    debs = base / "debs"
    stamp = base / f"{k.series}.json"
    pkg = f"linux-image-{k.release}-dbg={k.debian_version}"
    old = json.loads(stamp.read_text()) if stamp.exists() else None
    if old and old["package"] == pkg and (debs / old["deb"]).exists():
        return debs / old["deb"]
    if apt.missing.get(pkg):
        raise NotOnMirror(apt.missing[pkg])
    log(f"{k.series}: downloading {pkg} for debuginfod")
    tmp = base / f"tmp-{k.series}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    debs.mkdir(parents=True, exist_ok=True)
    try:
        proc = apt.get("download", pkg, cwd=tmp, timeout=1800, check=False)
        if proc.returncode != 0:
            err = f"apt-get download: {(proc.stdout + proc.stderr).strip()[-1500:]}"
            if "404" not in proc.stdout + proc.stderr:
                raise LabError(err)
            # Remembered until the next --apt-update, as ensure_kernel does.
            apt.remember_missing(pkg, err.splitlines()[-1])
            raise NotOnMirror(err)
        deb = next(tmp.glob("*.deb"))
        member = f"./usr/lib/debug/boot/vmlinux-{k.release}"
        listing = run(["dpkg-deb", "-c", str(deb)], timeout=900).stdout
        sizes = [int(f[2]) for f in map(str.split, listing.splitlines())
                 if len(f) >= 6 and f[5] == member and f[0].startswith("-")]
        if len(sizes) != 1:
            raise LabError(f"{deb.name}: no regular file {member}")
        if old and old["deb"] != deb.name:
            (debs / old["deb"]).unlink(missing_ok=True)
        deb.rename(debs / deb.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        (base / f"index.sqlite{suffix}").unlink(missing_ok=True)
    write_json(stamp, {"package": pkg, "deb": deb.name,
                       "vmlinux": {"member": member, "size": sizes[0],
                                   "lab_vmlinux": str(k.vmlinux)}})
    return debs / deb.name


def write_index(root):
    """manifests.json lists every manifest present (this run's and other series'). Manifests
    written before kernel.arch existed are x86_64 dumps: they get it (the dumps and their
    cache keys stay as they were)."""
    manifests = []
    for p in sorted((root / "dumps").glob("*/manifest.json")):
        m = json.loads(p.read_text())
        if "arch" not in m["kernel"]:
            m["kernel"]["arch"] = "x86_64"
            write_json(p, m)
        manifests.append(m)
    write_json(root / "manifests.json", {"lab_format": LAB_FORMAT, "dumps": manifests})
    return len(manifests)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", default="all",
                    help=f"comma-separated series, 'all' ({','.join(ALL_SERIES)}) or 'arm64' "
                         f"({','.join(ARM64_SERIES)})")
    ap.add_argument("--pin", action="append", default=[],
                    help="kernel ABI to use instead of the newest: SERIES=ABI (e.g. "
                         "6.12-rt=6.12.115+deb12), or ABI for every series it names (e.g. "
                         "6.1.0-55, 5.10.0-32, 7.2.13+deb14)")
    ap.add_argument("--scenario", action="append", default=[],
                    help=f"scenario(s) to build (default all): {', '.join(SCENARIOS)} "
                         f"(scale: {', '.join(SCALE_SERIES)} only)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-oracles", action="store_true")
    ap.add_argument("--no-crash9", action="store_true",
                    help="skip crash 9 (the sid root); 7.x cannot be built without it")
    ap.add_argument("--apt-update", action="store_true",
                    help="refresh the lab's apt lists (else only made once)")
    return ap.parse_args()


def select_series(arg):
    """A comma-separated list of series and the groups `all` (x86_64), `arm64` and
    `everything` (both)."""
    groups = {"all": ALL_SERIES, "arm64": ARM64_SERIES,
              "everything": list(ALL_SERIES) + list(ARM64_SERIES)}
    out = []
    for name in (s.strip() for s in arg.split(",") if s.strip()):
        if name not in groups and name not in SERIES:
            raise LabError(f"unknown series {name}; known: {', '.join(SERIES)}, "
                           "all, arm64, everything")
        for s in groups.get(name, [name]):
            if s not in out:
                out.append(s)
    return out


def select_pins(args, series_list):
    pins = {}
    for pin in args.pin:
        if "=" in pin:
            series, _, abi = pin.partition("=")
            if series not in SERIES:
                raise LabError(f"--pin {pin}: unknown series {series}")
            pins[series] = abi
            continue
        matches = [s for s in series_list if SERIES[s].image_re.match(SERIES[s].image_package(pin))]
        if not matches:
            raise LabError(f"--pin {pin}: not an ABI of any selected series")
        for s in matches:
            pins[s] = pin
    return pins


def main():
    args = parse_args()
    root = Path(os.environ.get("KDIVE_LAB_DIR", Path.home() / ".cache" / "kdive-lab")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, kill_all_qemus)
    signal.signal(signal.SIGINT, kill_all_qemus)
    scenarios = [s for arg in args.scenario for s in arg.split(",")] or SCENARIOS
    for s in scenarios:
        if s not in SCENARIOS:
            raise LabError(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")
    series_list = select_series(args.series)
    pins = select_pins(args, series_list)

    t0 = time.monotonic()
    apt = LabApt(root, refresh=args.apt_update)
    arches = sorted({SERIES[s].arch for s in series_list})
    mdfs = {a: ensure_makedumpfile(root, a) for a in arches}
    drgn_python = None if args.no_oracles else ensure_drgn(root)
    crash9 = not (args.no_oracles or args.no_crash9)
    need_sid = any(SERIES[s].sid_build for s in series_list) or \
        (crash9 and "x86_64" in arches)
    if args.no_crash9 and any(SERIES[s].sid_build for s in series_list):
        log("the sid root is still made: the 7.x module is built in it")
    crashes = []
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as one:
        sid_future = one.submit(ensure_sid_root, root, apt) if need_sid else None
        # The ARM64 crash (a gdb build: minutes) is only needed by the oracles, after the boots.
        crash_arm64_future = one.submit(ensure_crash_arm64, root, apt) \
            if crash9 and "aarch64" in arches else None

        def prepare(series):
            for abi in resolve_versions(apt, series, pins.get(series)):
                try:
                    k = ensure_kernel(root, apt, series, abi)
                    break
                except NotOnMirror as e:
                    if series in pins:
                        raise
                    log(f"{series}: {abi} is in the index but not on the mirror, trying an "
                        f"older ABI ({str(e).splitlines()[-1]})")
            else:
                raise LabError(f"{series}: none of the newest {DOWNLOAD_CANDIDATES} ABIs "
                               "downloads")
            prune_debug_modules(k)
            if any(s in USERLAND_SCENARIOS for s in scenarios):
                restore_debug_modules(k, apt, root)
            if drgn_python:
                index_vmlinux(k)
            if series in DEBUGINFOD_SERIES:
                # Only the debuginfod tests need it: its failure must not cost the dumps.
                try:
                    ensure_debuginfod_deb(root, apt, k)
                except LabError as e:
                    failures.append(f"series {series}: debuginfod .deb: {e}")
                    log(f"series {series}: debuginfod .deb FAILED: {e}")
            sid = sid_future.result() if k.spec.sid_build else None
            guest = ensure_guest_userland(root, apt, k.spec.a)
            key = build_initramfs(k, build_module(k, root, sid), guest)
            userland_key = None
            if any(s in USERLAND_SCENARIOS for s in scenarios):
                userland_key = build_userland_initramfs(
                    k, root, key, mdfs[k.spec.arch],
                    scale="scale" in scenarios and series in SCALE_SERIES)
            return k, (key, userland_key)

        # The series' downloads, unpacking (xz) and indexing are independent: overlap them.
        # One failed series (a download, a module build) must not stop the others.
        prepared = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futs = [(s, pool.submit(prepare, s)) for s in series_list]
            for series, f in futs:
                try:
                    prepared.append((series, *f.result()))
                except Exception as e:
                    failures.append(f"series {series}: {e}")
                    log(f"series {series}: FAILED: {e}")
        sid = sid_future.result() if sid_future else None
    crash9_sid = None if args.no_crash9 else sid
    for series, k, (initramfs_key, userland_key) in prepared:
        for s in scenarios:
            if s == "scale" and series not in SCALE_SERIES:
                continue
            if s in X86_ONLY_SCENARIOS and not k.spec.a.native:
                log(f"{series}: no {s} crash ({X86_ONLY_SCENARIOS[s]})")
                continue
            # scale: kdump only (a QEMU ELF dump of it would be 4 GiB); arm64: QEMU dumps of
            # ARM64_QEMU_SCENARIOS only.
            qemu = s != "scale" and (k.spec.a.native or s in ARM64_QEMU_SCENARIOS)
            for capture in ("kdump", "qemu") if qemu else ("kdump",):
                crashes.append((Crash(root, k, s, capture, la57=False),
                                userland_key if s in USERLAND_SCENARIOS else initramfs_key))
        if not k.spec.a.native:
            pass  # la57 is x86_64's 5-level paging (6.12-arm64 runs 52-bit VA in every crash)
        elif FULL_MATRIX_SCENARIO in scenarios and not k.five_level():
            log(f"{series}: no 5-level paging in this kernel (CONFIG_X86_5LEVEL): no la57 crashes")
        elif FULL_MATRIX_SCENARIO in scenarios:
            for capture in ("kdump", "qemu") if k.spec.la57_kdump else ("qemu",):
                crashes.append((Crash(root, k, FULL_MATRIX_SCENARIO, capture, la57=True),
                                initramfs_key))
    # Full-matrix crashes first: they take longest.
    crashes.sort(key=lambda ck: (not ck[0].scale, not ck[0].full_matrix,
                                 ck[0].capture != "kdump"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {}
        for c, ikey in crashes:
            key = f"{LAB_FORMAT}:{ikey}:{c.k.debian_version}:{c.memory_mb}:{c.crashkernel_mb}"
            futs[pool.submit(run_crash, c, mdfs[c.k.spec.arch], key)] = c
        for f in concurrent.futures.as_completed(futs):
            c = futs[f]
            try:
                f.result()
            except Exception as e:  # one failed boot must not stop the others
                failures.append(f"{c.crash_id}: {e}")
                log(f"{c.crash_id}: FAILED: {e}")
        names = [m["name"] for c, _ in crashes for m in c.manifests]
        write_index(root)  # the dumps are usable before their oracles are done
        if drgn_python:
            crash9 = sid_crash_version(crash9_sid) if crash9_sid else "none"
            okey = sha256_files([SCRIPTS / "drgn_oracle.py"],
                                extra=repr(CRASH_COMMANDS) + f"{LAB_FORMAT}:{ORACLE_FORMAT}:"
                                      f"{crash9}")
            crash_arm64 = None
            if crash_arm64_future:
                try:
                    crash_arm64 = crash_arm64_future.result()
                except LabError as e:
                    failures.append(f"crash for arm64 dumps: {e}")
                    log(f"crash for arm64 dumps: FAILED: {e}")
            # The arm64 dumps' key: their own crash, and drgn_arch.py.
            okey_arm64 = sha256_files(
                [SCRIPTS / "drgn_oracle.py", SCRIPTS / "drgn_arch.py"],
                extra=repr(CRASH_COMMANDS) + f"{LAB_FORMAT}:{ORACLE_FORMAT}:"
                      f"{crash_arm64[1] if crash_arm64 else 'none'}")
            arch_of = {m["name"]: c.k.spec.arch for c, _ in crashes for m in c.manifests}
            ofuts = {pool.submit(run_oracles, root, n, drgn_python, crash9_sid,
                                 okey if arch_of[n] == "x86_64" else okey_arm64, crash_arm64): n
                     for n in names}
            for f in concurrent.futures.as_completed(ofuts):
                try:
                    f.result()
                except Exception as e:
                    failures.append(f"{ofuts[f]} oracles: {e}")
                    log(f"{ofuts[f]}: oracles FAILED: {e}")
    count = write_index(root)
    log(f"{count} dumps in {root / 'manifests.json'}; {time.monotonic() - t0:.0f}s")
    for f in failures:
        log(f"FAILED {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as e:
        log(f"error: {e}")
        sys.exit(2)
