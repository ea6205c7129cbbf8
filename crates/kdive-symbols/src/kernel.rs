//! A kernel's images: the vmlinux and the modules, opened when first needed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use crate::{ElfImage, ModuleIndex, SymbolError};

/// Modules kept open at once; a trace names a handful, a hostile log could name thousands.
const MAX_OPEN_MODULES: usize = 64;

/// The images of one kernel. Module objects are opened (and their DWARF read) only when a
/// frame of theirs is looked up.
pub struct KernelImages {
    vmlinux: Option<Rc<ElfImage>>,
    /// Module images already open elsewhere (a dump's loaded modules), by name; never evicted.
    given: HashMap<String, Rc<ElfImage>>,
    modules: ModuleIndex,
    opened: RefCell<HashMap<String, Option<Rc<ElfImage>>>>,
    /// Modules that could not be opened, with why.
    errors: RefCell<Vec<SymbolError>>,
}

impl KernelImages {
    pub fn new(vmlinux: Option<Rc<ElfImage>>, modules: ModuleIndex) -> KernelImages {
        KernelImages {
            vmlinux,
            given: HashMap::new(),
            modules,
            opened: RefCell::new(HashMap::new()),
            errors: RefCell::new(Vec::new()),
        }
    }

    pub fn open(vmlinux: Option<&Path>, modules: ModuleIndex) -> Result<KernelImages, SymbolError> {
        let vmlinux = vmlinux.map(ElfImage::open).transpose()?;
        Ok(KernelImages::new(vmlinux.map(Rc::new), modules))
    }

    /// Uses `image` for module `name`, before any file of the module index.
    pub fn add_module(&mut self, name: &str, image: Rc<ElfImage>) {
        self.given.insert(name.replace('-', "_"), image);
    }

    pub fn vmlinux(&self) -> Option<&ElfImage> {
        self.vmlinux.as_deref()
    }

    pub fn modules(&self) -> &ModuleIndex {
        &self.modules
    }

    /// The image holding `module`'s code, or the vmlinux for `None`.
    pub fn image(&self, module: Option<&str>) -> Option<Rc<ElfImage>> {
        let Some(name) = module else {
            return self.vmlinux.clone();
        };
        let name = name.replace('-', "_");
        if let Some(image) = self.given.get(&name) {
            return Some(image.clone());
        }
        if let Some(image) = self.opened.borrow().get(&name) {
            return image.clone();
        }
        let image = self
            .modules
            .path(&name)
            .and_then(|path| match ElfImage::open(path) {
                Ok(image) => Some(Rc::new(image)),
                Err(err) => {
                    self.errors.borrow_mut().push(err);
                    None
                }
            });
        let mut opened = self.opened.borrow_mut();
        if opened.len() >= MAX_OPEN_MODULES {
            opened.clear();
        }
        opened.insert(name, image.clone());
        image
    }

    /// Errors met while opening modules, drained.
    pub fn take_errors(&self) -> Vec<SymbolError> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }
}
