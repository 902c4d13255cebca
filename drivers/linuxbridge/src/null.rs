//! The `null` interface driver: the device is someone else's business.

use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use leasehold_core::driver::{DriverContext, DriverError, InterfaceDriver, PlugSpec};
use leasehold_netlink::Handle;

/// Plugs and unplugs nothing, as Neutron's `NullDriver`. `init_l3` still
/// sets the addresses of a device that someone else made; with no such
/// device there is nothing to address and it succeeds.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullDriver;

pub(crate) fn create(_: &DriverContext<'_>) -> Result<Arc<dyn InterfaceDriver>, DriverError> {
    Ok(Arc::new(NullDriver))
}

#[async_trait]
impl InterfaceDriver for NullDriver {
    async fn plug(&self, _spec: &PlugSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn unplug(&self, _device: &str, _namespace: Option<&str>) -> Result<(), DriverError> {
        Ok(())
    }

    async fn init_l3(
        &self,
        device: &str,
        cidrs: &[IpNet],
        namespace: Option<&str>,
    ) -> Result<(), DriverError> {
        if namespace.is_some_and(|ns| !leasehold_netlink::Netns::exists(ns)) {
            return Ok(());
        }
        let context = format!("init_l3 on {device}");
        let h = Handle::open(namespace)
            .await
            .map_err(|e| e.into_driver_error(&context))?;
        match h.init_l3(device, cidrs).await {
            Err(leasehold_netlink::Error::NoSuchDevice { .. }) => Ok(()),
            other => other.map_err(|e| e.into_driver_error(&context)),
        }
    }
}
