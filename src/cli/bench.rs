//! `vosbench bench` (being written).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Other("vosbench bench is not built yet".into()))
}
