// A scripted HTTP/1.1 server on 127.0.0.1 for client tests (header-only; not a test file itself).
//
// It listens on an ephemeral port and answers one connection per scripted response, in order, with
// "Connection: close". It records each request target ("/v5/market/kline?category=..."). It stops by
// itself after the script is used up (the listening socket is closed, so further requests are refused)
// or when its deadline passes, whichever comes first; the destructor stops and joins it.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace attnlab::data::testing {

struct ScriptedResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class LoopbackServer {
 public:
  explicit LoopbackServer(std::vector<ScriptedResponse> script,
                          std::chrono::milliseconds deadline = std::chrono::milliseconds(5000))
      : script_(std::move(script)), deadline_(std::chrono::steady_clock::now() + deadline) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("LoopbackServer: socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // ephemeral
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd_);
      throw std::runtime_error("LoopbackServer: bind/listen failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Request targets received so far, in order.
  std::vector<std::string> targets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }

  // A port on 127.0.0.1 with nobody listening (bound then released): connections are refused.
  static int refused_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

 private:
  static const char* reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 403: return "Forbidden";
      case 404: return "Not Found";
      case 429: return "Too Many Requests";
      case 500: return "Internal Server Error";
      case 502: return "Bad Gateway";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  bool expired() const { return stop_ || std::chrono::steady_clock::now() >= deadline_; }

  void serve() {
    for (const auto& resp : script_) {
      int client = -1;
      while (client < 0 && !expired()) {  // poll in short slices so stop_ and the deadline are honoured
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) client = ::accept(fd_, nullptr, nullptr);
      }
      if (client < 0) break;
      handle(client, resp);
      ::close(client);
    }
    ::close(fd_);  // script done or deadline: refuse whatever comes next
  }

  void handle(int client, const ScriptedResponse& resp) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos && !expired()) {
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    // Request line: "GET <target> HTTP/1.1"
    const size_t sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      targets_.push_back(sp1 == std::string::npos || sp2 == std::string::npos ? req : req.substr(sp1 + 1, sp2 - sp1 - 1));
    }
    const std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + reason(resp.status) +
                            "\r\nContent-Type: " + resp.content_type +
                            "\r\nContent-Length: " + std::to_string(resp.body.size()) +
                            "\r\nConnection: close\r\n\r\n" + resp.body;
    size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n = ::send(client, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
    ::shutdown(client, SHUT_WR);
  }

  std::vector<ScriptedResponse> script_;
  std::chrono::steady_clock::time_point deadline_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::string> targets_;
  std::thread thread_;
};

}  // namespace attnlab::data::testing
