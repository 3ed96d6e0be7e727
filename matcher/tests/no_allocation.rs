//! `Books::apply` must not allocate once the order map and the books have reached their working
//! size. A counting global allocator checks that over a steady stream of adds, executions,
//! cancels, replaces and deletes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mdfh_feed::itch::{
    AddOrder, Header, Message, OrderCancel, OrderDelete, OrderExecuted, OrderReplace, Side, Stock,
};
use mdfh_matcher::{BookEvent, Books};

/// The system allocator, counting allocations made by the current thread so that other test
/// threads do not disturb the count.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`. The counter is a const-initialised
// thread-local `Cell` without a destructor, so touching it never allocates or re-enters the
// allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the arguments are forwarded unchanged, and the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn header(locate: u16) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: 0,
    }
}

/// Builds one round of messages on `instruments` books: per book, 8 adds per side, then executions,
/// cancels, replaces and deletes that remove every order again. Order references start at
/// `first_ref`, so that each round uses new references as a real feed does.
fn round(first_ref: u64, instruments: u16) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut order_ref = first_ref;
    for locate in 1..=instruments {
        let mut resting = Vec::new();
        for i in 0..8u32 {
            for (side, price) in [
                (Side::Buy, 1_000_000 - i * 100),
                (Side::Sell, 1_000_100 + i * 100),
            ] {
                order_ref += 1;
                messages.push(Message::AddOrder(AddOrder {
                    header: header(locate),
                    order_ref,
                    side,
                    shares: 100,
                    stock: Stock::new("TEST"),
                    price,
                    attribution: None,
                }));
                resting.push((order_ref, price));
            }
        }
        for (i, (resting_ref, price)) in resting.into_iter().enumerate() {
            match i % 4 {
                0 => messages.push(Message::OrderExecuted(OrderExecuted {
                    header: header(locate),
                    order_ref: resting_ref,
                    executed_shares: 100,
                    match_number: resting_ref,
                })),
                1 => messages.push(Message::OrderCancel(OrderCancel {
                    header: header(locate),
                    order_ref: resting_ref,
                    cancelled_shares: 100,
                })),
                2 => {
                    order_ref += 1;
                    messages.push(Message::OrderReplace(OrderReplace {
                        header: header(locate),
                        original_order_ref: resting_ref,
                        new_order_ref: order_ref,
                        shares: 50,
                        price,
                    }));
                    messages.push(Message::OrderDelete(OrderDelete {
                        header: header(locate),
                        order_ref,
                    }));
                }
                _ => messages.push(Message::OrderDelete(OrderDelete {
                    header: header(locate),
                    order_ref: resting_ref,
                })),
            }
        }
    }
    messages
}

#[test]
fn apply_does_not_allocate_when_warm() {
    const INSTRUMENTS: u16 = 20;
    let mut books = Books::with_capacity(4096, usize::from(INSTRUMENTS) + 1);
    let mut events = 0u64;
    let mut sink = |_: BookEvent| events += 1;

    // Warm-up creates the books and their symbol index entries.
    for msg in &round(0, INSTRUMENTS) {
        let _ = books.apply(msg, &mut sink);
    }
    assert_eq!(books.order_count(), 0);

    let rounds: Vec<Vec<Message>> = (1..=50u64)
        .map(|n| round(n * 1_000_000, INSTRUMENTS))
        .collect();
    let probe = allocations();
    std::hint::black_box(vec![0u8; 16]);
    assert!(
        allocations() > probe,
        "the counting allocator is not in use"
    );

    let before = allocations();
    for messages in &rounds {
        for msg in messages {
            let _ = books.apply(msg, &mut sink);
        }
    }
    let allocated = allocations() - before;

    assert_eq!(
        allocated, 0,
        "apply allocated {allocated} times over 50 warm rounds"
    );
    assert_eq!(books.order_count(), 0);
    assert_eq!(books.errors().total(), 0);
    assert!(events > 0);
}
