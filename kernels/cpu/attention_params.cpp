#include "kernels/cpu/attention_params.h"

#include "kernels/error.h"

namespace attnlab::kernels {

template <class T>
void check_attention_params(const AttentionParams<T>& p, const char* op) {
  ATTNLAB_CHECK(p.B >= 1 && p.Sq >= 1 && p.Sk >= 1 && p.H >= 1 && p.Hkv >= 1 && p.D >= 1, op,
                ": every size must be >= 1, got B=", p.B, " Sq=", p.Sq, " Sk=", p.Sk, " H=", p.H,
                " Hkv=", p.Hkv, " D=", p.D);
  ATTNLAB_CHECK(p.H % p.Hkv == 0, op, ": query heads H=", p.H,
                " must be a multiple of key/value heads Hkv=", p.Hkv);
  ATTNLAB_CHECK(p.q && p.k && p.v, op, ": Q, K and V pointers must not be null");
  ATTNLAB_CHECK(p.dropout_p >= 0 && p.dropout_p < 1, op, ": dropout_p must be in [0, 1), got ",
                p.dropout_p);
  ATTNLAB_CHECK(std::isfinite(p.scale), op, ": scale must be finite, got ", p.scale);
  ATTNLAB_CHECK(p.window >= 0, op, ": window must be >= 0 (0 = no sliding window), got ", p.window);
  ATTNLAB_CHECK(p.window == 0 || p.causal, op, ": a sliding window (", p.window,
                ") is a causal mask; set causal as well");
}

template void check_attention_params<float>(const AttentionParams<float>&, const char*);
template void check_attention_params<double>(const AttentionParams<double>&, const char*);

}  // namespace attnlab::kernels
