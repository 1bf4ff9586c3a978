//! Server benchmarks (filled in with the sync transport).

pub fn run(_accounts: usize, _reps: usize, _stored: usize) -> anyhow::Result<()> {
    anyhow::bail!("the server benchmarks need the sync transport, which is not wired in yet")
}
