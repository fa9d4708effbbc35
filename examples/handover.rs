//! What this machine's scheduler costs one thread handing work to another: the floor under the
//! paper pipeline's p99 (BENCHMARKS.md, tenth round).
//!
//! A steady poll crosses at least two threads: the journal's writer answers the range's commit to
//! the actors, and the actors hand the copies back to the writer. Each crossing wakes a sleeping
//! thread. This probe does only that, with nothing else of the daemon: every 10 ms the main thread
//! sends the time to a sleeping thread, which notes when it woke and answers. Optional spinning
//! threads stand for what else runs on a small server (the node, the operator's tools).
//!
//! With `work`, the same rhythm runs about 450 µs of arithmetic on one thread instead, with no
//! hand-over: the hand-over's share of a slow poll is the difference.
//!
//! `cargo run --release --example handover -- [HANDOVERS=2000] [SPINNERS=0] [wake|work]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The value at `per_mille` thousandths of `sorted` (nearest rank, rounded down).
fn percentile(sorted: &[u128], per_mille: usize) -> u128 {
    let Some(last) = sorted.len().checked_sub(1) else { return 0 };
    sorted[(last * per_mille / 1000).min(last)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let handovers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let spinners: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let work = args.next().is_some_and(|a| a == "work");

    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..spinners)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();

    if work {
        let took = alone(handovers);
        stop.store(true, Ordering::Relaxed);
        for h in hogs {
            let _ = h.join();
        }
        report_work(spinners, &took);
        return;
    }

    let (to_worker, worker_rx) = mpsc::channel::<Instant>();
    let (to_main, main_rx) = mpsc::channel::<(Instant, Instant)>();
    let worker = std::thread::spawn(move || {
        while let Ok(sent) = worker_rx.recv() {
            if to_main.send((sent, Instant::now())).is_err() {
                break;
            }
        }
    });

    let mut one_way = Vec::with_capacity(handovers);
    let mut round_trip = Vec::with_capacity(handovers);
    for _ in 0..handovers {
        // Both threads asleep between polls, as the daemon's are at a steady rate.
        std::thread::sleep(Duration::from_millis(10));
        let sent = Instant::now();
        if to_worker.send(sent).is_err() {
            break;
        }
        let Ok((sent, woke)) = main_rx.recv() else { break };
        one_way.push(woke.duration_since(sent).as_micros());
        round_trip.push(sent.elapsed().as_micros());
    }
    drop(to_worker);
    let _ = worker.join();
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        let _ = h.join();
    }

    one_way.sort_unstable();
    round_trip.sort_unstable();
    let over = |limit: u128| one_way.iter().filter(|&&us| us > limit).count();
    println!(
        "{{\"handovers\": {}, \"spinners\": {spinners}, \"one_way_us_p50_p99_p999_max\": [{}, {}, {}, {}], \
         \"round_trip_us_p50_p99_max\": [{}, {}, {}], \"one_way_over_400_us\": {}, \"one_way_over_1_ms\": {}}}",
        one_way.len(),
        percentile(&one_way, 500),
        percentile(&one_way, 990),
        percentile(&one_way, 999),
        one_way.last().copied().unwrap_or(0),
        percentile(&round_trip, 500),
        percentile(&round_trip, 990),
        round_trip.last().copied().unwrap_or(0),
        over(400),
        over(1000),
    );
}

/// Arithmetic the optimizer cannot drop: `rounds` steps of a linear congruential generator.
fn arithmetic(rounds: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

/// How long about 450 µs of arithmetic takes, `n` times, 10 ms apart (µs, sorted).
fn alone(n: usize) -> Vec<u128> {
    // Calibrated on the fastest of a few tries, so that a slow first try does not shrink the work.
    let probe = 100_000u64;
    let fastest = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(arithmetic(probe));
            t.elapsed().as_nanos().max(1)
        })
        .min()
        .unwrap_or(1);
    let rounds = u64::try_from(u128::from(probe) * 450_000 / fastest).unwrap_or(probe);
    let mut took: Vec<u128> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let t = Instant::now();
            std::hint::black_box(arithmetic(rounds));
            t.elapsed().as_micros()
        })
        .collect();
    took.sort_unstable();
    took
}

fn report_work(spinners: usize, took: &[u128]) {
    println!(
        "{{\"runs\": {}, \"spinners\": {spinners}, \"work_us_p50_p99_p999_max\": [{}, {}, {}, {}], \"over_1_ms\": {}}}",
        took.len(),
        percentile(took, 500),
        percentile(took, 990),
        percentile(took, 999),
        took.last().copied().unwrap_or(0),
        took.iter().filter(|&&us| us > 1000).count(),
    );
}
