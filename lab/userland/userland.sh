#!/bin/busybox sh
# The userland of the `userland` and `scale` guests, started by /kdive/init beside the lab's
# /init. Every line it and kdive-busy print on the console starts with "KDIVE: ".
B=/bin/busybox
# The lab's /init mounts /proc, /sys and /dev, installs the applets, loads the capture kernel
# (kdump boots) and then the test module: when the module is there, it is our turn.
i=0
while [ ! -e /sys/module/kdive_lab ] && [ $i -lt 1200 ]; do $B sleep 0.1; i=$((i + 1)); done
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
scenario=$(sed -n 's/.*kdive\.scenario=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "KDIVE: userland setup, scenario=$scenario"
fail() { echo "KDIVE: userland setup failed: $*"; exit 1; }
for ko in /kdive/modules/*.ko; do
	[ -e "$ko" ] && { insmod "$ko" || echo "KDIVE: insmod $ko failed"; }
done
ip link set lo up || fail "ip link set lo up"
mkdir -p /mnt/tmp /mnt/ext /tmp/kdive-ready
mount -t tmpfs -o size=64m kdive-tmp /mnt/tmp || fail "tmpfs"
echo "KDIVE: userland mount tmpfs kdive-tmp /mnt/tmp"

if [ "$scenario" = scale ]; then
	# 2000 processes x 4 tasks + 2000 single-threaded ones: 10000 tasks besides the kernel's.
	/bin/kdive-busy scale 2000 4 2000 &
	roles=scale
else
	# The extra disks (virtio): 128 MiB swap, 32 MiB ext2, told apart by size (512-byte sectors).
	i=0
	while [ ! -e /sys/block/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	swapdev= extdev=
	for d in /sys/block/vd*; do
		case "$(cat $d/size)" in
		262144) swapdev=/dev/${d##*/} ;;
		65536) extdev=/dev/${d##*/} ;;
		esac
	done
	[ -n "$swapdev" ] && [ -n "$extdev" ] || fail "virtio disks not found: $(ls /sys/block)"
	mke2fs -q -L kdive-ext "$extdev" >/dev/null 2>&1 || mke2fs -L kdive-ext "$extdev" >/dev/null \
		|| fail "mke2fs $extdev"
	mount -t ext2 "$extdev" /mnt/ext || fail "mount $extdev"
	echo "KDIVE: userland mount ext2 $extdev /mnt/ext"
	mkswap -L kdive-swap "$swapdev" >/dev/null || fail "mkswap $swapdev"
	swapon "$swapdev" || fail "swapon $swapdev"
	echo "KDIVE: userland swap $swapdev 131072 KiB"
	# The swap role runs in a memory cgroup of 16 MiB: most of its 48 MiB go to swap.
	mkdir -p /sys/fs/cgroup
	mount -t cgroup2 none /sys/fs/cgroup || fail "cgroup2"
	echo +memory > /sys/fs/cgroup/cgroup.subtree_control || fail "memory controller"
	mkdir /sys/fs/cgroup/kdive-swap
	echo 16M > /sys/fs/cgroup/kdive-swap/memory.max || fail "memory.max"
	roles="files net mmap ipc timer signals threads children dstate swap"
	for r in $roles; do
		case $r in
		swap) sh -c 'echo $$ > /sys/fs/cgroup/kdive-swap/cgroup.procs &&
			exec /bin/kdive-busy swap /tmp/kdive-ready' & ;;
		*) /bin/kdive-busy $r /tmp/kdive-ready & ;;
		esac
	done
fi
# Every role touches /tmp/kdive-ready/<role> when it is set up.
i=0
for r in $roles; do
	while [ ! -e /tmp/kdive-ready/$r ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e /tmp/kdive-ready/$r ] || fail "role $r not ready"
done
sleep 1
echo "KDIVE: userland ready: $(cat /proc/loadavg) (running/tasks)"
[ "$scenario" = scale ] || echo "KDIVE: userland swaps: $(tail -n +2 /proc/swaps | tr -s ' \n' ' ')"
echo "KDIVE: userland crashing with sysrq-c"
echo 1 > /proc/sys/kernel/sysrq
# From a child shell, as the sysrq-c scenario does.
sh -c 'echo c > /proc/sysrq-trigger'
