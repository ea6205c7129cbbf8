//! Synthetic BTF (`include/uapi/linux/btf.h` layout, little-endian): base and split sections,
//! every kind, and raw entries for malformed input.

/// `BTF_KIND_*` numbers.
pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`.
pub const INT_SIGNED: u32 = 1;
pub const INT_CHAR: u32 = 2;
pub const INT_BOOL: u32 = 4;

/// Builds a `.BTF` section type by type; each adder returns the new type's id.
#[derive(Debug, Clone)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    /// Split BTF: string offsets start after the base's string section.
    str_base: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        BtfBuilder::new()
    }
}

impl BtfBuilder {
    /// Base BTF: ids from 1, the string section starting with the empty string.
    pub fn new() -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            str_base: 0,
        }
    }

    /// Split BTF over a base whose last id is `base_next_id - 1` and whose string section is
    /// `base_str_len` bytes long.
    pub fn split(base_next_id: u32, base_str_len: u32) -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: base_next_id,
            str_base: base_str_len,
        }
    }

    /// The id the next type will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Length of the string section so far (what a split BTF over this one needs).
    pub fn str_len(&self) -> u32 {
        self.strings.len() as u32
    }

    /// Adds a string and returns its offset ("" is 0 in base BTF).
    pub fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() && self.str_base == 0 {
            return 0;
        }
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn word(&mut self, w: u32) {
        self.types.extend_from_slice(&w.to_le_bytes());
    }

    /// Appends a `struct btf_type` header with these raw fields and counts one type; the
    /// kind-specific words follow through [`BtfBuilder::raw_words`].
    pub fn raw_type(
        &mut self,
        name_off: u32,
        kind: u32,
        kind_flag: bool,
        vlen: u32,
        size_or_type: u32,
    ) -> u32 {
        self.word(name_off);
        self.word((u32::from(kind_flag) << 31) | (kind << 24) | (vlen & 0xffff));
        self.word(size_or_type);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends raw words to the type section.
    pub fn raw_words(&mut self, words: &[u32]) {
        for &w in words {
            self.word(w);
        }
    }

    fn named(
        &mut self,
        name: &str,
        kind: u32,
        kind_flag: bool,
        vlen: u32,
        size_or_type: u32,
    ) -> u32 {
        let name_off = self.str(name);
        self.raw_type(name_off, kind, kind_flag, vlen, size_or_type)
    }

    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        self.int_bits(name, size, encoding, 0, size * 8)
    }

    /// An INT with `BTF_INT_OFFSET`/`BTF_INT_BITS` (old-style bitfield members).
    pub fn int_bits(
        &mut self,
        name: &str,
        size: u32,
        encoding: u32,
        offset: u32,
        bits: u32,
    ) -> u32 {
        let id = self.named(name, kind::INT, false, 0, size);
        self.word((encoding << 24) | (offset << 16) | bits);
        id
    }

    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.named(name, kind::FLOAT, false, 0, size)
    }

    pub fn ptr(&mut self, target: u32) -> u32 {
        self.raw_type(0, kind::PTR, false, 0, target)
    }

    pub fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        let id = self.raw_type(0, kind::ARRAY, false, 0, 0);
        self.raw_words(&[elem, index, nelems]);
        id
    }

    pub fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.named(name, kind::TYPEDEF, false, 0, target)
    }

    pub fn qualifier(&mut self, kind: u32, target: u32) -> u32 {
        self.raw_type(0, kind, false, 0, target)
    }

    pub fn type_tag(&mut self, name: &str, target: u32) -> u32 {
        self.named(name, kind::TYPE_TAG, false, 0, target)
    }

    /// A struct or union; members are `(name, type, bit offset)`.
    pub fn composite(
        &mut self,
        union: bool,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let k = if union { kind::UNION } else { kind::STRUCT };
        let id = self.named(name, k, false, members.len() as u32, size);
        for &(m, ty, bit_offset) in members {
            let m = self.str(m);
            self.raw_words(&[m, ty, bit_offset]);
        }
        id
    }

    pub fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(false, name, size, members)
    }

    pub fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(true, name, size, members)
    }

    /// A struct with `kind_flag` set: members are `(name, type, bit offset, bitfield size)`.
    pub fn struct_kflag(
        &mut self,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let id = self.named(name, kind::STRUCT, true, members.len() as u32, size);
        for &(m, ty, bit_offset, bits) in members {
            let m = self.str(m);
            self.raw_words(&[m, ty, (bits << 24) | bit_offset]);
        }
        id
    }

    pub fn enum_(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, i32)]) -> u32 {
        let id = self.named(name, kind::ENUM, signed, values.len() as u32, size);
        for &(e, v) in values {
            let e = self.str(e);
            self.raw_words(&[e, v as u32]);
        }
        id
    }

    pub fn enum64(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, u64)]) -> u32 {
        let id = self.named(name, kind::ENUM64, signed, values.len() as u32, size);
        for &(e, v) in values {
            let e = self.str(e);
            self.raw_words(&[e, v as u32, (v >> 32) as u32]);
        }
        id
    }

    pub fn fwd(&mut self, name: &str, union: bool) -> u32 {
        self.named(name, kind::FWD, union, 0, 0)
    }

    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.raw_type(0, kind::FUNC_PROTO, false, params.len() as u32, ret);
        for &(p, ty) in params {
            let p = self.str(p);
            self.raw_words(&[p, ty]);
        }
        id
    }

    pub fn func(&mut self, name: &str, proto: u32, linkage: u32) -> u32 {
        self.named(name, kind::FUNC, false, linkage, proto)
    }

    pub fn var(&mut self, name: &str, ty: u32, linkage: u32) -> u32 {
        let id = self.named(name, kind::VAR, false, 0, ty);
        self.word(linkage);
        id
    }

    /// A DATASEC; vars are `(type, offset, size)`.
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.named(name, kind::DATASEC, false, vars.len() as u32, size);
        for &(ty, off, sz) in vars {
            self.raw_words(&[ty, off, sz]);
        }
        id
    }

    pub fn decl_tag(&mut self, name: &str, ty: u32, component_idx: i32) -> u32 {
        let id = self.named(name, kind::DECL_TAG, false, 0, ty);
        self.word(component_idx as u32);
        id
    }

    /// The section bytes: header, types, strings.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1); // version
        out.push(0); // flags
        for w in [
            24,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }

    /// An x86_64 ELF relocatable object with the section as `.BTF`.
    pub fn build_elf(&self) -> Vec<u8> {
        self.build_elf_with_build_id(None)
    }

    /// As [`BtfBuilder::build_elf`], with a `.note.gnu.build-id` note when `build_id` is given.
    pub fn build_elf_with_build_id(&self, build_id: Option<&[u8]>) -> Vec<u8> {
        use object::write::Object;
        let mut obj = Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let section = obj.add_section(
            Vec::new(),
            b".BTF".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        obj.set_section_data(section, self.build(), 4);
        if let Some(id) = build_id {
            // Elf64_Nhdr: namesz, descsz, type NT_GNU_BUILD_ID (3), then "GNU\0" and the id.
            let mut note = Vec::new();
            for w in [4u32, id.len() as u32, 3] {
                note.extend_from_slice(&w.to_le_bytes());
            }
            note.extend_from_slice(b"GNU\0");
            note.extend_from_slice(id);
            while note.len() % 4 != 0 {
                note.push(0);
            }
            let section = obj.add_section(
                Vec::new(),
                b".note.gnu.build-id".to_vec(),
                object::SectionKind::Note,
            );
            obj.set_section_data(section, note, 4);
        }
        obj.write().unwrap_or_default()
    }
}
