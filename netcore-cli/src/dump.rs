//! `netcore dump`
use crate::Failure;
/// `netcore dump`
#[derive(Debug, clap::Args)]
pub struct DumpArgs {}
/// `netcore dump`
pub fn dump(_args: DumpArgs, _json: bool) -> Result<(), Failure> {
    todo!()
}
