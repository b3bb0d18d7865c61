//! `taskraft tls init DIR` and `taskraft tls issue DIR NAME`: certificates for a TLS cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::tls::init::InitOptions;
use crate::tls::init::Usage;

#[derive(Debug, clap::Subcommand)]
pub enum TlsCmd {
    /// Write a new CA plus replica, worker and client certificates for a local cluster into
    /// DIR (`ca.pem`, `replica-N.pem`, `worker.pem`, `client.pem`, each with `-key.pem`).
    Init {
        /// Directory to write into (created if missing).
        dir: PathBuf,
        /// Replica certificates to write (`replica-1` … `replica-N`).
        #[arg(long, default_value_t = 3)]
        replicas: u64,
        /// Extra DNS name or IP of every replica certificate, besides localhost, 127.0.0.1
        /// and ::1 (repeatable, or comma-separated).
        #[arg(long = "san", value_delimiter = ',')]
        sans: Vec<String>,
        /// Replace an existing CA in DIR (certificates issued from the old one stop working).
        #[arg(long)]
        force: bool,
    },
    /// Sign one more certificate with the CA in DIR (written by `tls init`): DIR/NAME.pem and
    /// DIR/NAME-key.pem.
    Issue {
        /// Directory holding `ca.pem` and `ca-key.pem`.
        dir: PathBuf,
        /// File stem of the new certificate, e.g. `replica-4`.
        name: String,
        /// A client-only certificate (workers, tools) instead of a replica's.
        #[arg(long)]
        client: bool,
        /// Extra DNS name or IP (repeatable, or comma-separated).
        #[arg(long = "san", value_delimiter = ',')]
        sans: Vec<String>,
        /// Replace existing files of that name.
        #[arg(long)]
        force: bool,
    },
}

impl TlsCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TlsCmd::Init { dir, replicas, sans, force } => {
                anyhow::ensure!(replicas >= 1, "--replicas must be at least 1");
                let set = crate::tls::init::write_cluster(&dir, &InitOptions { replicas, sans, force })?;
                println!("wrote a cluster CA and certificates into {}:", dir.display());
                println!("  CA (tls_ca, --ca-file)   {}", set.ca.0.display());
                for (i, (cert, key)) in set.replicas.iter().enumerate() {
                    println!("  replica {:<3}             {}  {}", i + 1, cert.display(), key.display());
                }
                println!("  worker                   {}  {}", set.worker.0.display(), set.worker.1.display());
                println!("  client                   {}  {}", set.client.0.display(), set.client.1.display());
                println!("\nreplica N: tls_cert, tls_key = replica-N.pem, replica-N-key.pem; tls_ca = ca.pem");
                println!("clients:   taskraft --ca-file {} task list", set.ca.0.display());
                println!("curl:      curl --cacert {} https://127.0.0.1:7101/v1/cluster", set.ca.0.display());
                println!("keep ca-key.pem private: whoever has it can join the cluster as a replica.");
            }
            TlsCmd::Issue { dir, name, client, sans, force } => {
                let (usage, cn) = if client {
                    (Usage::Client, format!("taskraft client {name}"))
                } else {
                    (Usage::Replica, format!("taskraft {name}"))
                };
                let (cert, key) = crate::tls::init::issue(&dir, &name, &cn, &sans, usage, force)?;
                println!("wrote {} and {}", cert.display(), key.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
