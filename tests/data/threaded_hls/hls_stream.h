// A bounded, blocking hls::stream for the threaded C simulation of tests/test_hls_graph.py (tests
// only, never part of a project). Vitis HLS runs a DATAFLOW region's processes concurrently over
// FIFOs of bounded depth (2 unless a STREAM pragma says otherwise); the g++ C simulation runs them
// one after the other over unbounded streams, so it cannot see a deadlock. With this header first
// on the include path and each process of msq_top started as a thread, a write waits while the
// FIFO holds `depth` words and a read while it is empty, as in hardware; a wait longer than
// MSQ_STALL_SECONDS is a deadlock: the program names the stream and exits with status 3.
#ifndef MSQ_TEST_THREADED_HLS_STREAM_H
#define MSQ_TEST_THREADED_HLS_STREAM_H

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>

#ifndef MSQ_STALL_SECONDS
#define MSQ_STALL_SECONDS 5
#endif

namespace hls {

template <class T>
class stream {
  public:
    stream() : name_("stream") {}
    explicit stream(const char* name) : name_(name) {}
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;

    // Words the FIFO holds; 0 (the default, for the testbench's ports) is unbounded.
    void set_depth(std::size_t depth) { depth_ = depth; }

    void write(const T& value) {
        std::unique_lock<std::mutex> lock(mutex_);
        wait(lock, [this] { return depth_ == 0 || words_.size() < depth_; }, "write to a full");
        words_.push_back(value);
        changed_.notify_all();
    }

    T read() {
        std::unique_lock<std::mutex> lock(mutex_);
        wait(lock, [this] { return !words_.empty(); }, "read from an empty");
        T value = words_.front();
        words_.pop_front();
        changed_.notify_all();
        return value;
    }

    bool empty() {
        std::lock_guard<std::mutex> lock(mutex_);
        return words_.empty();
    }

  private:
    template <class Ready>
    void wait(std::unique_lock<std::mutex>& lock, Ready ready, const char* what) {
        if (!changed_.wait_for(lock, std::chrono::seconds(MSQ_STALL_SECONDS), ready)) {
            std::fprintf(stderr, "deadlock: %s stream %s (depth %zu) for %d s\n", what, name_.c_str(), depth_,
                         MSQ_STALL_SECONDS);
            std::_Exit(3);
        }
    }

    std::string name_;
    std::size_t depth_ = 0;
    std::deque<T> words_;
    std::mutex mutex_;
    std::condition_variable changed_;
};

}  // namespace hls

#endif  // MSQ_TEST_THREADED_HLS_STREAM_H
