//! kdive-kernel: the kernel inside a dump.
//!
//! [`Kernel`] is the program object: the dump's physical memory behind the kernel's
//! address space (kdive-arch), the vmlinux symbol table and the kernel's BTF types
//! (kdive-symbols), with typed reads by symbol, struct and member path. Helpers are named
//! after the kernel's (`for_each_task`, `task_cpu`, `idle_task`, `container_of`,
//! `list_for_each` as [`ListWalk`]), read layouts from the types rather than from offsets
//! written here, bound every walk and return data; they never print.

pub mod audit;
pub mod dev;
mod error;
pub mod files;
pub mod ipc;
pub mod irq;
mod kernel;
mod list;
pub mod log_buf;
pub mod machine;
pub mod meminfo;
pub mod mm;
pub mod module;
pub mod module_btf;
pub mod net;
pub mod printk;
pub mod sched;
pub mod sections;
pub mod signal;
pub mod slab;
pub mod stack;
pub mod swap;
pub mod sys;
pub mod task;
pub mod timer;
pub mod vmalloc;
pub mod vmstat;
pub mod wait;
pub mod walk;

pub use error::KernelError;
pub use kernel::{DumpInfo, DumpOnlySources, Kernel, StructBuf};
pub use list::{container_of, rb_tree_in_order, ListWalk, MAX_LIST_ENTRIES};
pub use module::{KernelModules, Module, SymbolHit, SymbolSource};
pub use printk::{PrintkLayoutSource, PrintkLog, PrintkRecord};
pub use stack::{ExceptionStack, FrameSymbolizer, StackKind, StackUnwinder, StartKind, TaskStack};
pub use task::{for_each_task, MemUsage, Task, TaskList, TaskStateBits};

pub use kdive_arch::VirtAddr;
pub use kdive_dump::{Format, PhysAddr, PhysMem};
/// Symbols and types (the typed-memory commands walk whole C types).
pub use kdive_symbols as symbols;
pub use kdive_symbols::{TypeClass, TypeInfo};
