use super::CliResult;

pub fn run() -> CliResult {
    print!("{}", crate::apis::crds_yaml()?);
    Ok(())
}
