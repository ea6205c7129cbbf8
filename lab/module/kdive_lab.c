// SPDX-License-Identifier: GPL-2.0
/*
 * kdive_lab: crashes the kernel on purpose, for kdive's real-crash lab.
 *
 * Load with kdive_lab.mode=<mode>:
 *   null          NULL dereference from module init
 *   bug           BUG() from module init
 *   kthread-null  NULL dereference in the kthread "kdive_lab"
 *   panic         panic() in the kthread "kdive_lab"
 *   timer         NULL dereference in a timer (softirq) callback
 *   hung          the kthread "kdive_lab" sleeps uninterruptibly forever
 *                 (panics with hung_task_panic=1)
 *   overflow      the kthread "kdive_lab" recurses until its stack runs into
 *                 the guard page: a double fault (#DF) on the DF exception stack
 *   none          load and do nothing
 *
 * Every crash goes through lab_trigger() -> lab_record() (static inline)
 * -> lab_update_stats() -> lab_bump() (static inline), so the stack holds a
 * few functions of the module, two of them inlined.
 */
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/timer.h>
#include <linux/version.h>

static char *mode = "none";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "null|bug|kthread-null|panic|timer|hung|overflow|none");

/* Far beyond any kernel stack; a parameter, so the compiler cannot see the recursion is endless. */
static unsigned long overflow_depth = 1UL << 30;
module_param(overflow_depth, ulong, 0444);

struct lab_stats {
	unsigned long hits;
	unsigned long last_value;
};

/* Never assigned: every access through it is a NULL dereference the compiler cannot see. */
struct lab_stats *kdive_lab_stats;
EXPORT_SYMBOL_GPL(kdive_lab_stats);

static struct task_struct *lab_thread;
static struct timer_list lab_timer;

static __always_inline void lab_bump(struct lab_stats *stats, unsigned long value)
{
	stats->hits++;
	stats->last_value = value;
}

static noinline void lab_update_stats(struct lab_stats *stats, unsigned long value)
{
	pr_info("kdive_lab: updating stats at %px\n", stats);
	lab_bump(stats, value);
	pr_info("kdive_lab: stats updated\n");
}

static __always_inline void lab_record(unsigned long value)
{
	lab_update_stats(READ_ONCE(kdive_lab_stats), value * 2 + 1);
}

static noinline void lab_trigger(const char *where, unsigned long value)
{
	pr_info("kdive_lab: crashing in %s\n", where);
	lab_record(value);
	/* Not reached; keeps the call above from becoming a tail call (a frame of its own). */
	pr_info("kdive_lab: survived %s\n", where);
}

static noinline void lab_check_invariant(unsigned long value)
{
	pr_info("kdive_lab: checking invariant %lu\n", value);
	if (READ_ONCE(kdive_lab_stats) == NULL)
		BUG();
}

static noinline void lab_panic(const char *where)
{
	panic("kdive_lab: panic requested in %s", where);
}

/* 256 bytes a level: the 16 KiB stack overflows after about 60 levels. */
static noinline unsigned long lab_recurse(unsigned long depth)
{
	volatile char frame[256];

	frame[0] = (char)depth;
	if (depth < overflow_depth)
		/* Adding after the call keeps it from becoming a tail call (a loop). */
		return lab_recurse(depth + 1) + frame[0];
	return frame[0];
}

static int lab_thread_fn(void *data)
{
	const char *what = data;

	msleep(200);
	if (!strcmp(what, "kthread-null")) {
		lab_trigger("kthread", 2);
	} else if (!strcmp(what, "panic")) {
		lab_panic("kthread");
	} else if (!strcmp(what, "overflow")) {
		pr_info("kdive_lab: recursing %lu levels\n", lab_recurse(0));
	} else if (!strcmp(what, "hung")) {
		pr_info("kdive_lab: sleeping uninterruptibly forever\n");
		set_current_state(TASK_UNINTERRUPTIBLE);
		schedule();
	}
	while (!kthread_should_stop())
		msleep(1000);
	return 0;
}

static void lab_timer_fn(struct timer_list *timer)
{
	lab_trigger("timer", 3);
}

static int __init kdive_lab_init(void)
{
	pr_info("kdive_lab: loaded, mode=%s\n", mode);
	if (!strcmp(mode, "null")) {
		lab_trigger("init", 1);
	} else if (!strcmp(mode, "bug")) {
		lab_check_invariant(4);
	} else if (!strcmp(mode, "timer")) {
		timer_setup(&lab_timer, lab_timer_fn, 0);
		mod_timer(&lab_timer, jiffies + msecs_to_jiffies(100));
	} else if (!strcmp(mode, "kthread-null") || !strcmp(mode, "panic") ||
		   !strcmp(mode, "hung") || !strcmp(mode, "overflow")) {
		lab_thread = kthread_run(lab_thread_fn, mode, "kdive_lab");
		if (IS_ERR(lab_thread))
			return PTR_ERR(lab_thread);
	}
	return 0;
}

static void __exit kdive_lab_exit(void)
{
	if (lab_thread)
		kthread_stop(lab_thread);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	timer_delete_sync(&lab_timer); /* del_timer_sync is gone in 7.x */
#else
	del_timer_sync(&lab_timer);
#endif
}

module_init(kdive_lab_init);
module_exit(kdive_lab_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Crashes the kernel on purpose for the kdive lab");
