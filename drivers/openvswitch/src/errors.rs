//! Netlink errors as driver errors, keeping the errno and the wording.

use leasehold_core::driver::DriverError;

/// A netlink-crate error as a [`DriverError`] named by what was being done.
pub(crate) fn driver_error(context: &str, e: leasehold_netlink::Error) -> DriverError {
    match e.errno() {
        Some(errno) => DriverError::io(
            format!("{context}: {e}"),
            std::io::Error::from_raw_os_error(errno),
        ),
        None => DriverError::Failed(format!("{context}: {e}")),
    }
}
