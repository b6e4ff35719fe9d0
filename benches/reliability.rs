//! The full-size reliability run: the crash test with 100,000 applicants and at least 5
//! `kill -9`s of the `worker` binary (plus, with `--all`, the broker outage and the replica
//! kill), against a Tansu broker process. Prints the figures; exits non-zero if a scenario
//! fails (a loss names the missing application ids).
//!
//! ```sh
//! scripts/crash-test.sh                       # 100,000 records, 5 kills, seed 1
//! cargo bench --bench reliability -- --records 100000 --kills 8 --seed 7 --all
//! cargo bench --bench reliability -- --records 100000 --hostile   # memory under hostile input
//! ```
//!
//! The scenarios are those of `tests/reliability_tansu.rs` (`tests/support/reliability.rs`).

use credit_testkit::reliability;

use reliability::{CrashPlan, OutagePlan};
use std::time::Duration;

struct Args {
    records: usize,
    kills: usize,
    seed: u64,
    feed_seconds: f64,
    all: bool,
    hostile: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        records: 100_000,
        kills: 5,
        seed: 1,
        feed_seconds: 60.0,
        all: false,
        hostile: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--records" => {
                args.records = value("--records")?
                    .parse()
                    .map_err(|e| format!("--records: {e}"))?
            }
            "--kills" => {
                args.kills = value("--kills")?
                    .parse()
                    .map_err(|e| format!("--kills: {e}"))?
            }
            "--seed" => {
                args.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--feed-seconds" => {
                args.feed_seconds = value("--feed-seconds")?
                    .parse()
                    .map_err(|e| format!("--feed-seconds: {e}"))?
            }
            "--all" => args.all = true,
            "--hostile" => args.hostile = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.kills < 1 || args.records < (args.kills + 1) * 100 {
        return Err("need at least one kill and 100 records per worker life".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("{problem}\nusage: reliability [--records N] [--kills K] [--seed S] [--feed-seconds T] [--all] [--hostile]");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    let mut failed = false;
    if args.hostile {
        println!(
            "== hostile stream: {} records, every other one hostile, over {:.0} s",
            args.records, args.feed_seconds
        );
        match runtime.block_on(reliability::hostile_stream(args.records, args.feed_seconds)) {
            Ok(figures) => println!("{figures}\n"),
            Err(failure) => {
                println!("FAILED: {failure}\n");
                failed = true;
            }
        }
        if failed {
            std::process::exit(1);
        }
        return;
    }
    let plan = CrashPlan::new(args.records, args.kills, args.seed, args.feed_seconds);
    println!(
        "== crash test: {} records into {} partitions at {:.0}/s, {} kill -9s (seed {})",
        plan.records,
        reliability::PARTITIONS,
        plan.feed_rate,
        plan.kills,
        plan.seed
    );
    match runtime.block_on(reliability::crash_test(&plan)) {
        Ok(figures) => println!("{figures}\n"),
        Err(failure) => {
            println!("FAILED: {failure}\n");
            failed = true;
        }
    }
    if args.all {
        println!("== broker outage");
        let plan = OutagePlan {
            before: args.records / 5,
            after: args.records / 20,
            down_for: Duration::from_secs(5),
        };
        match runtime.block_on(reliability::broker_outage(&plan)) {
            Ok((figures, _)) => println!("{figures}\n"),
            Err(failure) => {
                println!("FAILED: {failure}\n");
                failed = true;
            }
        }
        println!("== one of two replicas killed (replaced after its session expired)");
        match runtime.block_on(reliability::rebalance_by_kill(
            reliability::BrokerKind::Tansu,
            args.records / 5,
            args.feed_seconds / 4.0,
            args.seed,
            true,
        )) {
            Ok(figures) => println!("{figures}\n"),
            Err(failure) => {
                println!("FAILED: {failure}\n");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
