//! Export of books, trades and orders (being written).
