//! `vosbench plot` (being written).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Other("vosbench plot is not built yet".into()))
}
