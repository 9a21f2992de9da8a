//! The contract between the Rust host and the WGSL it drives, read from the WGSL itself with
//! naga: parameter structs (member names, offsets, sizes) against their `#[repr(C)]` mirrors,
//! and the constants both sides must agree on. Used by each family's tests.

use naga::{Expression, Literal, Module, TypeInner};

/// One parsed WGSL module.
pub(crate) struct Shader {
    what: String,
    module: Module,
}

/// `(name, offset)` of every field of a `#[repr(C)]` struct, in declaration order.
macro_rules! fields {
    ($ty:ty: $($field:ident),+ $(,)?) => {
        &[$((stringify!($field), std::mem::offset_of!($ty, $field))),+]
    };
}
pub(crate) use fields;

impl Shader {
    /// Parses `source`, named `what` in failures.
    #[track_caller]
    pub fn parse(what: &str, source: &str) -> Shader {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
        Shader {
            what: what.to_string(),
            module,
        }
    }

    /// Checks that the WGSL struct `name` has exactly the members `fields` (name and byte
    /// offset, in order) and the size `size`.
    #[track_caller]
    pub fn check_struct(&self, name: &str, size: usize, fields: &[(&str, usize)]) {
        let what = &self.what;
        let ty = self
            .module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{what}: no struct `{name}`"))
            .1;
        let TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{what}: `{name}` is not a struct");
        };
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize))
            .collect();
        assert_eq!(
            wgsl, fields,
            "{what}: `{name}`'s members (WGSL left, Rust right)"
        );
        assert_eq!(
            *span as usize, size,
            "{what}: `{name}`'s size (WGSL left, Rust right)"
        );
    }

    /// The value of the `const` named `name`.
    #[track_caller]
    pub fn constant(&self, name: &str) -> f64 {
        let c = self
            .module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no const `{name}`", self.what))
            .1;
        self.literal(c.init, name)
    }

    /// The default value of the `override` named `name`.
    #[track_caller]
    pub fn override_default(&self, name: &str) -> f64 {
        let o = self
            .module
            .overrides
            .iter()
            .find(|(_, o)| o.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no override `{name}`", self.what))
            .1;
        let init = o
            .init
            .unwrap_or_else(|| panic!("{}: override `{name}` has no default", self.what));
        self.literal(init, name)
    }

    /// The names of every `override`, in declaration order.
    pub fn overrides(&self) -> Vec<String> {
        self.module
            .overrides
            .iter()
            .filter_map(|(_, o)| o.name.clone())
            .collect()
    }

    /// Checks that a function `name` exists.
    #[track_caller]
    pub fn function(&self, name: &str) {
        let found = self
            .module
            .functions
            .iter()
            .any(|(_, f)| f.name.as_deref() == Some(name));
        assert!(found, "{}: no function `{name}`", self.what);
    }

    /// Checks that the entry point `name` exists.
    #[track_caller]
    pub fn entry_point(&self, name: &str) {
        let found = self.module.entry_points.iter().any(|e| e.name == name);
        assert!(found, "{}: no entry point `{name}`", self.what);
    }

    #[track_caller]
    fn literal(&self, e: naga::Handle<Expression>, name: &str) -> f64 {
        match self.module.global_expressions[e] {
            Expression::Literal(l) => match l {
                Literal::U32(v) => f64::from(v),
                Literal::I32(v) => f64::from(v),
                Literal::F32(v) => f64::from(v),
                Literal::Bool(v) => f64::from(u8::from(v)),
                Literal::AbstractInt(v) => v as f64,
                Literal::AbstractFloat(v) => v,
                other => panic!("{}: `{name}` is {other:?}", self.what),
            },
            ref other => panic!("{}: `{name}` is not a literal: {other:?}", self.what),
        }
    }
}
