//! Enrolling edges and administrators on the origin machine (issue 15):
//! `shanlu origin add-edge/add-admin/edges/revoke`, and reading a join code
//! for `shanlu edge init --join`.

use std::process::ExitCode;

use anyhow::Context;
use server::Origin;
use server::admin::{edges, log};
use server::join::{Address, JoinCode};
use server::origin::PublicAddresses;
use server::tokens::Book;

use crate::cli::{AddAdminArgs, AddEdgeArgs, OriginEdgesArgs, OriginRevokeArgs, PublicAddressArgs};
use crate::{format, outln};

/// `--public-quic`/`--public-https`, checked.
pub fn public_addresses(args: &PublicAddressArgs) -> anyhow::Result<PublicAddresses> {
    if let Some(quic) = &args.public_quic {
        Address::parse(quic, "quic").context("checking --public-quic")?;
    }
    if let Some(https) = &args.public_https {
        Address::parse(https, "https").context("checking --public-https")?;
    }
    Ok(PublicAddresses {
        quic: args.public_quic.as_ref().map(|q| q.trim().to_owned()),
        https: args.public_https.as_ref().map(|h| h.trim().to_owned()),
    })
}

pub fn add_edge(args: &AddEdgeArgs) -> anyhow::Result<ExitCode> {
    let Some(data) = &args.at.data else {
        if args.public.public_quic.is_some() || args.public.public_https.is_some() {
            anyhow::bail!(
                "--public-quic/--public-https apply on the origin machine only; a remote origin makes the join code from its origin.toml"
            );
        }
        let (token, join) =
            crate::remote::edges::add_edge(&args.at.remote, &args.name, args.county.as_deref())?;
        return print_added(&args.name, &token, join.as_deref());
    };
    Origin::open(data)?;
    let addresses = public_addresses(&args.public)?;
    let added = edges::add_edge(
        data,
        log::LOCAL,
        &args.name,
        args.county.as_deref(),
        &addresses,
    )
    .with_context(|| format!("adding edge {} to {}", args.name, data.display()))?;
    let join = added.join.map(|join| join.encode());
    print_added(&args.name, &added.token, join.as_deref())
}

/// What `origin add-edge` prints, on the origin machine or remotely: the
/// token, the join code and its QR code when there is one.
fn print_added(name: &str, token: &str, join: Option<&str>) -> anyhow::Result<ExitCode> {
    outln!("edge token: {token}")?;
    // The name was checked by the origin; its ASCII id is for file names and labels.
    if let Ok(name) = server::edge_name::EdgeName::parse(name) {
        eprintln!("Added edge {name} (ASCII id {}).", name.ascii_id());
    }
    let Some(code) = join else {
        eprintln!(
            "Give this token to the school's edge (`shanlu edge init --token ...`). It is shown only once;\n\
             the origin keeps only its hash.\n\
             No join code: the origin does not know the address edges reach it at. Record it with\n\
             `shanlu origin init ... --public-quic quic://HOST:PORT --public-https https://HOST:PORT`\n\
             on a new origin, or give both to `origin add-edge` on the origin machine."
        );
        return Ok(ExitCode::SUCCESS);
    };
    outln!("join code: {code}")?;
    match server::join::qr(code) {
        Ok(qr) => eprintln!("{qr}"),
        Err(err) => eprintln!("(no QR code: {err})"),
    }
    eprintln!(
        "At the school: shanlu edge init --data DIR --join <the join code>, or scan the QR code.\n\
         The code holds the token: hand it over as you would the token. It is shown only once;\n\
         the origin keeps only the token's hash."
    );
    Ok(ExitCode::SUCCESS)
}

pub fn add_admin(args: &AddAdminArgs) -> anyhow::Result<ExitCode> {
    Origin::open(&args.data)?;
    let token = edges::add_admin(&args.data, log::LOCAL, &args.name).with_context(|| {
        format!(
            "adding administrator {} to {}",
            args.name,
            args.data.display()
        )
    })?;
    outln!("admin token: {token}")?;
    eprintln!(
        "Give this token to {} only. It is shown only this once; the origin keeps only its hash.\n\
         `shanlu origin revoke --admin {}` refuses it from then on.",
        args.name, args.name
    );
    Ok(ExitCode::SUCCESS)
}

pub fn edges(args: &OriginEdgesArgs) -> anyhow::Result<ExitCode> {
    let json = match &args.at.data {
        Some(data) => {
            Origin::open(data)?;
            edges::list_json(data)?
        }
        None => crate::remote::edges::list(&args.at.remote)?,
    };
    if args.json {
        outln!("{json}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let listed: serde_json::Value =
        serde_json::from_str(&json).context("reading the list of edges")?;
    let listed = listed["edges"].as_array().cloned().unwrap_or_default();
    if listed.is_empty() {
        eprintln!("No edges yet: `shanlu origin add-edge --name NAME` adds one.");
    }
    for edge in &listed {
        let county = edge["county"].as_str().unwrap_or("-");
        let revoked = match edge["revoked_at"].as_u64() {
            Some(at) => format!("revoked {}", format::time(at)),
            None => "active".to_owned(),
        };
        let added = format::time(edge["added_at"].as_u64().unwrap_or(0));
        let name = edge["name"].as_str().unwrap_or("");
        outln!("{name}\t{county}\tadded {added}\t{revoked}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(args: &OriginRevokeArgs) -> anyhow::Result<ExitCode> {
    let (book, what) = if args.admin {
        (Book::Admins, "administrator")
    } else {
        (Book::Edges, "edge")
    };
    let newly = match &args.at.data {
        Some(data) => {
            Origin::open(data)?;
            edges::revoke(data, log::LOCAL, book, &args.name)
                .with_context(|| format!("revoking {what} {} in {}", args.name, data.display()))?
        }
        None if args.admin => anyhow::bail!(
            "administrators are revoked on the origin machine (`shanlu origin revoke --data DIR --admin NAME`)"
        ),
        None => crate::remote::edges::revoke(&args.at.remote, &args.name)?,
    };
    if newly {
        outln!("revoked {what} {}", args.name)?;
        eprintln!("Its token is refused from its next connection on.");
    } else {
        outln!("{what} {} was already revoked", args.name)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `edge init` needs from a join code, as the long form's texts:
/// (origin, origin key, certificate, token, fallback).
pub struct Joined {
    pub origin: String,
    pub origin_key: String,
    pub origin_cert: String,
    pub token: String,
    pub fallback: Option<String>,
}

/// Reads a join code; a mistyped one is refused here, before any network.
pub fn read_join(code: &str) -> anyhow::Result<Joined> {
    let join = JoinCode::decode(code).context("checking --join")?;
    Ok(Joined {
        origin: join.quic_url(),
        origin_key: join.origin_key_hex(),
        origin_cert: join.cert_hex(),
        token: join.token_hex(),
        fallback: join.https_url(),
    })
}
