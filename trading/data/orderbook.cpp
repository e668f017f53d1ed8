#include "trading/data/orderbook.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace attnlab::data {

void OrderBookSnapshot::validate() const {
  auto side = [&](const std::vector<BookLevel>& lv, const char* name, bool descending) {
    for (size_t i = 0; i < lv.size(); ++i) {
      ATTNLAB_CHECK(std::isfinite(lv[i].price) && lv[i].price > 0 && std::isfinite(lv[i].size) && lv[i].size > 0,
                    "order book '", symbol, "': ", name, " level ", i, " has price ", lv[i].price, " size ",
                    lv[i].size, " (both must be positive)");
      if (i > 0)
        ATTNLAB_CHECK(descending ? lv[i].price < lv[i - 1].price : lv[i].price > lv[i - 1].price,
                      "order book '", symbol, "': ", name, " not sorted best-first at level ", i);
    }
  };
  side(bids, "bids", true);
  side(asks, "asks", false);
  if (!bids.empty() && !asks.empty())
    ATTNLAB_CHECK(bids[0].price < asks[0].price, "order book '", symbol, "': crossed (best bid ", bids[0].price,
                  " >= best ask ", asks[0].price, ")");
}

OrderBookFeatures orderbook_features(const OrderBookSnapshot& book, size_t levels) {
  ATTNLAB_CHECK(!book.bids.empty() && !book.asks.empty(), "orderbook_features: '", book.symbol,
                "' has an empty side (", book.bids.size(), " bids, ", book.asks.size(), " asks)");
  ATTNLAB_CHECK(levels > 0, "orderbook_features: levels must be > 0");
  book.validate();
  OrderBookFeatures f;
  const BookLevel& b = book.bids[0];
  const BookLevel& a = book.asks[0];
  f.best_bid = b.price;
  f.best_ask = a.price;
  f.mid = 0.5 * (b.price + a.price);
  f.spread = a.price - b.price;
  f.spread_bps = f.spread / f.mid * 1e4;
  f.microprice = (b.price * a.size + a.price * b.size) / (a.size + b.size);
  f.bid_levels = book.bids.size();
  f.ask_levels = book.asks.size();
  auto cumulate = [&](const std::vector<BookLevel>& lv, std::vector<double>& out) {
    double sum = 0;
    for (size_t i = 0; i < std::min(levels, lv.size()); ++i) out.push_back(sum += lv[i].size);
    return sum;
  };
  const double bid_vol = cumulate(book.bids, f.cum_bid_depth);
  const double ask_vol = cumulate(book.asks, f.cum_ask_depth);
  f.imbalance = bid_vol + ask_vol > 0 ? (bid_vol - ask_vol) / (bid_vol + ask_vol) : 0.0;
  return f;
}

}  // namespace attnlab::data
