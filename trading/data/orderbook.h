// Order-book snapshot and the features read off it (mid, spread, imbalance, microprice, depth).
//
// Conventions: bids best-first (descending price), asks best-first (ascending price); sizes in base
// units (Bybit "size"). Features use the top `levels` of each side.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::data {

struct BookLevel {
  double price = 0, size = 0;
};

struct OrderBookSnapshot {
  std::string symbol;
  int64_t ts_ms = 0;      // exchange time of the snapshot
  int64_t update_id = 0;  // Bybit "u"
  std::vector<BookLevel> bids, asks;

  // Throws attnlab::Error if a side is not strictly ordered best-first, a price or size is not
  // positive and finite, or the book is crossed (best bid >= best ask).
  void validate() const;
};

struct OrderBookFeatures {
  double best_bid = 0, best_ask = 0;
  double mid = 0;            // (best_bid + best_ask) / 2
  double spread = 0;         // best_ask - best_bid
  double spread_bps = 0;     // spread / mid * 1e4
  double imbalance = 0;      // (bid_vol - ask_vol) / (bid_vol + ask_vol) over the top levels; 0 if both 0
  double microprice = 0;     // (best_bid * ask_size1 + best_ask * bid_size1) / (bid_size1 + ask_size1):
                             // leans toward the side with less size, i.e. where the price is about to go
  std::vector<double> cum_bid_depth, cum_ask_depth;  // [k] = size summed over levels 0..k (top levels)
  size_t bid_levels = 0, ask_levels = 0;             // levels in the snapshot (all of them)
};

// Features over the top `levels` levels of each side (fewer if the book is shallower).
// Throws attnlab::Error if either side is empty or the book fails validate().
OrderBookFeatures orderbook_features(const OrderBookSnapshot& book, size_t levels = 5);

}  // namespace attnlab::data
