//! Dynamic driver plugins: a `.so` built from a driver crate, loaded at run time.
//!
//! A plugin exports two symbols, both made by [`declare_plugin!`]: a
//! `#[repr(C)]` [`PluginHeader`] and a register function. Rust has no stable
//! ABI, so the loader checks every header field (magic, plugin ABI version,
//! rustc version, leasehold-core version, target) before it calls anything,
//! and refuses a plugin built any other way with a message saying what to
//! rebuild. Loaded libraries are never unloaded: their code backs the drivers.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::registry::{DhcpDriverEntry, InterfaceDriverEntry, Provenance, Registry, RegistryError};

/// The header's first bytes.
pub const PLUGIN_MAGIC: [u8; 16] = *b"LEASEHOLD-PLUGIN";
/// Version of the header layout and of the register function's contract.
pub const PLUGIN_ABI_VERSION: u32 = 1;
/// Name of the exported header symbol.
pub const HEADER_SYMBOL: &str = "LEASEHOLD_PLUGIN_HEADER";
/// Name of the exported register function.
pub const REGISTER_SYMBOL: &str = "leasehold_plugin_register";

/// The rustc that compiled this leasehold-core.
pub const RUSTC_VERSION: &str = env!("LEASEHOLD_RUSTC_VERSION");
/// This leasehold-core's version.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The target this leasehold-core was compiled for.
pub const TARGET: &str = env!("LEASEHOLD_TARGET");

/// What a plugin says about how it was built. `magic` and `abi_version` come
/// first and keep their place in every ABI version, so any header can be read
/// that far.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginHeader {
    /// [`PLUGIN_MAGIC`].
    pub magic: [u8; 16],
    /// [`PLUGIN_ABI_VERSION`] of the core it was built with.
    pub abi_version: u32,
    /// leasehold-core version, NUL-padded.
    pub core_version: [u8; 32],
    /// `rustc --version`, NUL-padded.
    pub rustc_version: [u8; 128],
    /// Target triple, NUL-padded.
    pub target: [u8; 64],
}

const fn padded<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() && i < N - 1 {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

fn unpad(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl PluginHeader {
    /// The header of a plugin built with this core and compiler.
    pub const fn current() -> Self {
        PluginHeader {
            magic: PLUGIN_MAGIC,
            abi_version: PLUGIN_ABI_VERSION,
            core_version: padded(CORE_VERSION),
            rustc_version: padded(RUSTC_VERSION),
            target: padded(TARGET),
        }
    }
}

/// What a plugin's register function fills in.
#[derive(Debug, Default)]
pub struct PluginRegistrar {
    dhcp: Vec<DhcpDriverEntry>,
    interface: Vec<InterfaceDriverEntry>,
}

impl PluginRegistrar {
    /// Offers a DHCP driver.
    pub fn dhcp_driver(&mut self, entry: DhcpDriverEntry) {
        self.dhcp.push(entry);
    }

    /// Offers an interface driver.
    pub fn interface_driver(&mut self, entry: InterfaceDriverEntry) {
        self.interface.push(entry);
    }
}

/// Exports a plugin's header and register function from a `cdylib` crate.
///
/// ```no_run
/// fn register(registrar: &mut leasehold_core::plugin::PluginRegistrar) {
///     // registrar.dhcp_driver(MY_DRIVER_ENTRY);
///     let _ = registrar;
/// }
/// leasehold_core::declare_plugin!(register);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($register:path) => {
        #[unsafe(no_mangle)]
        #[used]
        pub static LEASEHOLD_PLUGIN_HEADER: $crate::plugin::PluginHeader =
            $crate::plugin::PluginHeader::current();

        #[unsafe(no_mangle)]
        pub extern "Rust" fn leasehold_plugin_register(
            registrar: &mut $crate::plugin::PluginRegistrar,
        ) {
            $register(registrar)
        }
    };
}

/// Loading a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be opened as a shared library.
    #[error("plugin {path}: cannot load: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library has no header symbol, or the header's magic is wrong.
    #[error("plugin {path}: not a Leasehold plugin (no {HEADER_SYMBOL} with the Leasehold magic); build it with leasehold_core::declare_plugin!")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// A header field differs from this agent's.
    #[error("plugin {path}: built with {field} {found:?}, but this agent needs {expected:?}; rebuild the plugin against leasehold-core {CORE_VERSION} with {RUSTC_VERSION} for {TARGET}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Which field.
        field: &'static str,
        /// This agent's value.
        expected: String,
        /// The plugin's value.
        found: String,
    },
    /// The file or its directory may be changed by someone other than root.
    #[error("plugin {path}: refused: {reason}; plugins must be owned by root and writable by root alone")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong with its permissions.
        reason: String,
    },
    /// The plugin's drivers clash with registered ones.
    #[error("plugin {path}: {source}")]
    Registry {
        /// The file.
        path: PathBuf,
        /// The clash.
        #[source]
        source: RegistryError,
    },
}

/// Compares a header with this agent's, field by field, in order.
pub fn check_header(path: &Path, header: &PluginHeader) -> Result<(), PluginError> {
    if header.magic != PLUGIN_MAGIC {
        return Err(PluginError::NotAPlugin { path: path.into() });
    }
    let mismatch = |field, expected: String, found: String| PluginError::Mismatch {
        path: path.into(),
        field,
        expected,
        found,
    };
    if header.abi_version != PLUGIN_ABI_VERSION {
        return Err(mismatch(
            "plugin ABI version",
            PLUGIN_ABI_VERSION.to_string(),
            header.abi_version.to_string(),
        ));
    }
    let ours = PluginHeader::current();
    for (field, expected, found) in [
        (
            "leasehold-core version",
            &ours.core_version[..],
            &header.core_version[..],
        ),
        (
            "rustc version",
            &ours.rustc_version[..],
            &header.rustc_version[..],
        ),
        ("target", &ours.target[..], &header.target[..]),
    ] {
        if expected != found {
            return Err(mismatch(field, unpad(expected), unpad(found)));
        }
    }
    Ok(())
}

/// Refuses files that someone other than root could have replaced.
fn check_permissions(path: &Path) -> Result<(), PluginError> {
    let unsafe_because = |reason: String| PluginError::Unsafe {
        path: path.into(),
        reason,
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    let file = std::fs::metadata(path).map_err(|e| PluginError::Open {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let dir_path = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::metadata(dir_path).map_err(|e| PluginError::Open {
        path: path.into(),
        reason: e.to_string(),
    })?;
    for (what, shown, meta) in [("the file", path, &file), ("its directory", dir_path, &dir)] {
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_because(format!(
                "{what} {} is writable by group or others (mode {:o})",
                shown.display(),
                meta.mode() & 0o7777
            )));
        }
        if root && meta.uid() != 0 {
            return Err(unsafe_because(format!(
                "{what} {} is owned by uid {}, not root",
                shown.display(),
                meta.uid()
            )));
        }
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Loads the plugin at `path`, checks it, and adds its drivers to `registry`.
/// Returns how many drivers it added.
pub fn load_plugin(path: &Path, registry: &mut Registry) -> Result<usize, PluginError> {
    check_permissions(path)?;
    let open_err = |e: libloading::Error| PluginError::Open {
        path: path.into(),
        reason: e.to_string(),
    };
    // SAFETY: loading a library runs its initialisers; plugins are code the
    // operator chose to run, from a root-owned file (checked above).
    let library = unsafe { libloading::Library::new(path) }.map_err(open_err)?;
    // SAFETY: the symbol is only read as a header after its magic and ABI
    // version, which every layout keeps first, have been checked.
    let header: PluginHeader = unsafe {
        match library.get::<*const PluginHeader>(HEADER_SYMBOL.as_bytes()) {
            Ok(symbol) => {
                let ptr: *const PluginHeader = *symbol;
                let magic = std::ptr::read_unaligned(ptr as *const [u8; 16]);
                if magic != PLUGIN_MAGIC {
                    return Err(PluginError::NotAPlugin { path: path.into() });
                }
                let abi = std::ptr::read_unaligned((ptr as *const u8).add(16) as *const u32);
                if abi != PLUGIN_ABI_VERSION {
                    return Err(PluginError::Mismatch {
                        path: path.into(),
                        field: "plugin ABI version",
                        expected: PLUGIN_ABI_VERSION.to_string(),
                        found: abi.to_string(),
                    });
                }
                std::ptr::read(ptr)
            }
            Err(_) => return Err(PluginError::NotAPlugin { path: path.into() }),
        }
    };
    check_header(path, &header)?;
    let mut registrar = PluginRegistrar::default();
    // SAFETY: the header proves the plugin was built with this core, compiler
    // and target, so the function's Rust signature matches ours.
    unsafe {
        let register = library
            .get::<fn(&mut PluginRegistrar)>(REGISTER_SYMBOL.as_bytes())
            .map_err(|_| PluginError::NotAPlugin { path: path.into() })?;
        register(&mut registrar);
    }
    // The drivers' code and names live in the library: keep it for good.
    std::mem::forget(library);
    let provenance = Provenance::Plugin(path.into());
    let count = registrar.dhcp.len() + registrar.interface.len();
    let registry_err = |source| PluginError::Registry {
        path: path.into(),
        source,
    };
    for entry in registrar.dhcp {
        registry
            .add_dhcp(entry, provenance.clone())
            .map_err(registry_err)?;
    }
    for entry in registrar.interface {
        registry
            .add_interface(entry, provenance.clone())
            .map_err(registry_err)?;
    }
    Ok(count)
}

/// Whether a path looks like a shared library (for listings and hints).
pub fn is_shared_library(path: &Path) -> bool {
    path.extension() == Some(OsStr::new("so"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_header_passes_and_each_field_is_checked() {
        let path = Path::new("/p.so");
        let good = PluginHeader::current();
        check_header(path, &good).unwrap();

        let mut bad = good;
        bad.core_version = padded("0.0.1");
        let text = check_header(path, &bad).unwrap_err().to_string();
        assert!(text.contains("leasehold-core version \"0.0.1\""), "{text}");
        assert!(
            text.contains(&format!("needs \"{CORE_VERSION}\"")),
            "{text}"
        );
        assert!(text.contains("rebuild the plugin"), "{text}");

        let mut bad = good;
        bad.rustc_version = padded("rustc 1.70.0 (old)");
        assert!(check_header(path, &bad)
            .unwrap_err()
            .to_string()
            .contains("rustc version \"rustc 1.70.0 (old)\""));

        let mut bad = good;
        bad.target = padded("aarch64-unknown-linux-gnu");
        assert!(check_header(path, &bad)
            .unwrap_err()
            .to_string()
            .contains("target"));

        let mut bad = good;
        bad.abi_version = 99;
        assert!(check_header(path, &bad)
            .unwrap_err()
            .to_string()
            .contains("plugin ABI version \"99\""));

        let mut bad = good;
        bad.magic = *b"SOMETHING-ELSE!!";
        assert!(matches!(
            check_header(path, &bad),
            Err(PluginError::NotAPlugin { .. })
        ));
    }

    #[test]
    fn header_carries_the_build_facts() {
        let h = PluginHeader::current();
        assert!(unpad(&h.rustc_version).starts_with("rustc "));
        assert_eq!(unpad(&h.core_version), CORE_VERSION);
        assert!(!unpad(&h.target).is_empty());
    }
}
