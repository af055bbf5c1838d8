//! `hearth migrate`: applies the PostgreSQL migrations embedded in this binary.

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Connection URL of the schema owner role (migrations run as the owner; the
    /// application and relay roles are granted what they need, nothing more).
    #[arg(long, env = "HEARTH_OWNER_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let config = hearth_postgres::parse_url(&args.database_url)?;
    let client = hearth_postgres::connect(&config)
        .await
        .context("connecting as the owner role")?;
    let applied = hearth_postgres::migrate(&client).await?;
    let latest = hearth_postgres::MIGRATIONS.last().map_or(0, |m| m.version);
    if applied.is_empty() {
        println!("database is up to date (migration {latest})");
    } else {
        println!("applied migrations {applied:?}; database at migration {latest}");
    }
    Ok(())
}
