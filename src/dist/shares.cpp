#include "dist/shares.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>

#include "dqe/errors.h"

namespace dqe {

namespace {

class ByteWriter {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  template <class T>
  void put_all(const T* values, size_t count) {
    if (count == 0) return;  // an empty vector's data() may be null
    out_.append(reinterpret_cast<const char*>(values), count * sizeof(T));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  template <class T>
  T get() {
    T value;
    get_all(&value, 1);
    return value;
  }
  template <class T>
  void get_all(T* values, size_t count) {
    if (count > (bytes_.size() - at_) / sizeof(T)) throw Error("data parallel: a process's share of the data is cut short");
    if (count == 0) return;  // memcpy may not take the null data() of an empty vector
    std::memcpy(values, bytes_.data() + at_, count * sizeof(T));
    at_ += count * sizeof(T);
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

// Token ids travel as int32 and token types as one byte: a quarter of the int64 pair.
void put_encoding(ByteWriter& w, const Encoding& e) {
  if (e.type_ids.size() != e.ids.size()) throw Error("data parallel: an encoding's ids and types differ in length");
  w.put<uint32_t>(static_cast<uint32_t>(e.ids.size()));
  w.put<int64_t>(e.truncated);
  std::vector<int32_t> ids(e.ids.size());
  std::vector<uint8_t> types(e.ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (e.ids[i] < 0 || e.ids[i] > std::numeric_limits<int32_t>::max() || e.type_ids[i] < 0 || e.type_ids[i] > 255)
      throw Error("data parallel: token id " + std::to_string(e.ids[i]) + " or type " + std::to_string(e.type_ids[i]) +
                  " out of range for the exchange");
    ids[i] = static_cast<int32_t>(e.ids[i]);
    types[i] = static_cast<uint8_t>(e.type_ids[i]);
  }
  w.put_all(ids.data(), ids.size());
  w.put_all(types.data(), types.size());
}

Encoding get_encoding(ByteReader& r) {
  Encoding e;
  const auto n = r.get<uint32_t>();
  e.truncated = r.get<int64_t>();
  std::vector<int32_t> ids(n);
  std::vector<uint8_t> types(n);
  r.get_all(ids.data(), n);
  r.get_all(types.data(), n);
  e.ids.assign(ids.begin(), ids.end());
  e.type_ids.assign(types.begin(), types.end());
  return e;
}

template <class T>
std::string pack_all(const std::vector<T>& items, void (*put)(ByteWriter&, const T&)) {
  ByteWriter w;
  w.put<uint64_t>(items.size());
  for (const T& item : items) put(w, item);
  return w.take();
}

template <class T>
std::vector<T> unpack_all(std::string_view bytes, T (*get)(ByteReader&)) {
  ByteReader r(bytes);
  const auto n = r.get<uint64_t>();
  if (n > bytes.size()) throw Error("data parallel: a process's share of the data is malformed");
  std::vector<T> items;
  items.reserve(n);
  for (uint64_t i = 0; i < n; ++i) items.push_back(get(r));
  if (!r.done()) throw Error("data parallel: a process's share of the data has trailing bytes");
  return items;
}

void put_example(ByteWriter& w, const Example& e) {
  put_encoding(w, e.text);
  w.put<int64_t>(e.unknown_tokens);
  w.put<uint32_t>(static_cast<uint32_t>(e.side.size()));
  for (const auto& v : e.side) {
    w.put<uint32_t>(static_cast<uint32_t>(v.size()));
    w.put_all(v.data(), v.size());
  }
}

Example get_example(ByteReader& r) {
  Example e;
  e.text = get_encoding(r);
  e.unknown_tokens = r.get<int64_t>();
  e.side.resize(r.get<uint32_t>());
  for (auto& v : e.side) {
    v.resize(r.get<uint32_t>());
    r.get_all(v.data(), v.size());
  }
  return e;
}

// A share's bytes: kOk and the results, or the kind of error and its message.
constexpr char kOk = 'o';

std::string error_bytes(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Interrupted& e) {
    return "I" + std::to_string(e.signal_number()) + "\n" + e.what();
  } catch (const DataBudgetError& e) {
    return std::string("B") + e.what();
  } catch (const DataError& e) {
    return std::string("D") + e.what();
  } catch (const ConfigError& e) {
    return std::string("C") + e.what();
  } catch (const IoError& e) {
    return std::string("F") + e.what();
  } catch (const ModelError& e) {
    return std::string("M") + e.what();
  } catch (const std::exception& e) {
    return std::string("E") + e.what();
  }
}

[[noreturn]] void throw_error_bytes(const std::string& bytes, int rank) {
  const std::string what = bytes.substr(1);
  switch (bytes[0]) {
    case 'I': {
      const size_t nl = what.find('\n');
      throw Interrupted(std::stoi(what.substr(0, nl)), what.substr(nl + 1));
    }
    case 'B': throw DataBudgetError(what);
    case 'D': throw DataError(what);
    case 'C': throw ConfigError(what);
    case 'F': throw IoError(what);
    case 'M': throw ModelError(what);
    default: throw Error("data parallel: rank " + std::to_string(rank) + " failed: " + what);
  }
}

template <class T>
std::vector<T> in_shares(const RunContext& ctx, size_t n, const std::function<std::vector<T>(size_t, size_t)>& work,
                         std::string (*pack)(const std::vector<T>&), std::vector<T> (*unpack)(std::string_view)) {
  if (!ctx.gather_over_processes) return work(0, n);
  const auto [first, last] = ctx.share_of(n);
  std::string mine;
  std::exception_ptr error;
  try {
    mine = kOk + pack(work(first, last));
  } catch (...) {
    error = std::current_exception();
    mine = error_bytes(error);
  }
  const std::vector<std::string> all = ctx.gather_over_processes(mine);
  // A process whose share failed throws its own error as it was; the others the first failed
  // share's, in rank order.
  if (error) std::rethrow_exception(error);
  for (size_t r = 0; r < all.size(); ++r) {
    if (!all[r].empty() && all[r][0] == kOk) continue;
    if (all[r].empty()) throw Error("data parallel: rank " + std::to_string(r) + " sent an empty share");
    throw_error_bytes(all[r], static_cast<int>(r));
  }
  std::vector<T> out;
  for (const auto& bytes : all) {
    std::vector<T> part = unpack(std::string_view(bytes).substr(1));
    if (out.empty()) out = std::move(part);
    else out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

}  // namespace

std::string pack_encodings(const std::vector<Encoding>& encodings) { return pack_all(encodings, put_encoding); }
std::vector<Encoding> unpack_encodings(std::string_view bytes) { return unpack_all(bytes, get_encoding); }
std::string pack_examples(const std::vector<Example>& examples) { return pack_all(examples, put_example); }
std::vector<Example> unpack_examples(std::string_view bytes) { return unpack_all(bytes, get_example); }

std::vector<Encoding> encodings_in_shares(const RunContext& ctx, size_t n,
                                          const std::function<std::vector<Encoding>(size_t, size_t)>& encode) {
  return in_shares(ctx, n, encode, pack_encodings, unpack_encodings);
}

std::vector<Example> examples_in_shares(const RunContext& ctx, const Featurizer& featurizer,
                                        const std::vector<Record>& records) {
  const std::function<std::vector<Example>(size_t, size_t)> encode = [&](size_t first, size_t last) {
    return featurizer.encode_all(records, ctx.threads, first, last);
  };
  return in_shares(ctx, records.size(), encode, pack_examples, unpack_examples);
}

torch::Tensor logits_in_shares(const RunContext& ctx, size_t n, int64_t outputs,
                               const std::function<torch::Tensor(size_t, size_t)>& predict) {
  if (!ctx.sum_over_processes) return predict(0, n).to(torch::kFloat32);
  const auto [first, last] = ctx.share_of(n);
  std::vector<double> whole(n * static_cast<size_t>(outputs), 0.0);
  if (last > first) {
    const torch::Tensor part = predict(first, last).to(torch::kFloat64).contiguous();
    std::copy(part.data_ptr<double>(), part.data_ptr<double>() + part.numel(),
              whole.begin() + static_cast<std::ptrdiff_t>(first * static_cast<size_t>(outputs)));
  }
  ctx.sum_over_processes(whole);
  return torch::tensor(whole, torch::kFloat64).view({static_cast<int64_t>(n), outputs}).to(torch::kFloat32);
}

}  // namespace dqe
