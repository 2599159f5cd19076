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
    Origin::open(&args.data)?;
    let addresses = public_addresses(&args.public)?;
    let added = edges::add_edge(
        &args.data,
        log::LOCAL,
        &args.name,
        args.county.as_deref(),
        &addresses,
    )
    .with_context(|| format!("adding edge {} to {}", args.name, args.data.display()))?;
    outln!("edge token: {}", added.token)?;
    // The name was checked by add_edge; its ASCII id is for file names and labels.
    if let Ok(name) = server::edge_name::EdgeName::parse(&args.name) {
        eprintln!("Added edge {name} (ASCII id {}).", name.ascii_id());
    }
    let Some(join) = added.join else {
        eprintln!(
            "Give this token to the school's edge (`shanlu edge init --token ...`). It is shown only once;\n\
             the origin keeps only its hash.\n\
             No join code: the origin does not know the address edges reach it at. Record it with\n\
             `shanlu origin init ... --public-quic quic://HOST:PORT --public-https https://HOST:PORT`\n\
             on a new origin, or give both to `origin add-edge` for this code."
        );
        return Ok(ExitCode::SUCCESS);
    };
    let code = join.encode();
    outln!("join code: {code}")?;
    match server::join::qr(&code) {
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
    Origin::open(&args.data)?;
    if args.json {
        outln!("{}", edges::list_json(&args.data)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let listed = edges::list(&args.data, Book::Edges)?;
    if listed.is_empty() {
        eprintln!("No edges yet: `shanlu origin add-edge --data DIR --name NAME` adds one.");
    }
    for edge in &listed {
        let county = edge.county.as_deref().unwrap_or("-");
        let revoked = match edge.revoked_at {
            Some(at) => format!("revoked {}", format::time(at)),
            None => "active".to_owned(),
        };
        outln!(
            "{}\t{county}\tadded {}\t{revoked}",
            edge.name,
            format::time(edge.added_at)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(args: &OriginRevokeArgs) -> anyhow::Result<ExitCode> {
    Origin::open(&args.data)?;
    let (book, what) = if args.admin {
        (Book::Admins, "administrator")
    } else {
        (Book::Edges, "edge")
    };
    let newly = edges::revoke(&args.data, log::LOCAL, book, &args.name)
        .with_context(|| format!("revoking {what} {} in {}", args.name, args.data.display()))?;
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
