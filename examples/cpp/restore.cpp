// restore.cpp — libbridge from C++ through a small RAII wrapper (no leaks on any error path).
//
//   restore_cpp MODEL.onnx IN.ppm OUT.ppm [NFE [SEED]]
//
// Binary 8-bit PPM (P6) in and out. Build:
//   c++ -std=c++17 restore.cpp $(pkg-config --cflags --libs bridge) -o restore_cpp
#include <bridge.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace bridge {

// A failed libbridge call, with its status and the thread's last-error message.
class Error : public std::runtime_error {
public:
    Error(const std::string &what, bridge_status status)
        : std::runtime_error(what + ": " + bridge_status_name(static_cast<uint32_t>(status)) + ": " + bridge_last_error()),
          status_(status) {}
    bridge_status status() const { return status_; }

private:
    bridge_status status_;
};

inline void check(bridge_status st, const char *what) {
    if (st != BRIDGE_OK) throw Error(what, st);
}

// Owns a bridge_model; movable, not copyable. Models are immutable and may be shared by threads.
class Model {
public:
    explicit Model(const std::string &path) {
        bridge_model *m = nullptr;
        check(bridge_model_load(path.c_str(), &m), "loading the model");
        handle_.reset(m);
    }
    uint32_t sr_scale() const {
        uint32_t s = 0;
        check(bridge_model_sr_scale(handle_.get(), &s), "sr_scale");
        return s;
    }
    std::string family() const {
        const char *f = nullptr;
        check(bridge_model_family(handle_.get(), &f), "family");
        return f;  // copied: the model owns the original
    }
    const bridge_model *get() const { return handle_.get(); }

private:
    struct Free {
        void operator()(bridge_model *m) const { bridge_model_free(m); }
    };
    std::unique_ptr<bridge_model, Free> handle_;
};

// Owns a bridge_restorer; movable, not copyable. One thread at a time.
class Restorer {
public:
    Restorer(const Model &model, const bridge_restorer_options &options) {
        bridge_restorer *r = nullptr;
        check(bridge_restorer_new(model.get(), &options, &r), "creating the restorer");
        handle_.reset(r);
    }
    static bridge_restorer_options default_options() {
        bridge_restorer_options o;
        check(bridge_restorer_options_init(&o), "options");
        return o;
    }
    void output_size(uint32_t w, uint32_t h, uint32_t &ow, uint32_t &oh) const {
        check(bridge_restorer_output_size(handle_.get(), w, h, &ow, &oh), "output size");
    }
    // Restore; `progress` may be nullptr.
    void restore(const bridge_image &in, const bridge_image &out, bridge_progress_fn progress = nullptr,
                 void *user_data = nullptr) {
        check(bridge_restore(handle_.get(), &in, &out, progress, user_data), "restoring");
    }
    // Safe from any thread while restore() runs.
    void cancel() { bridge_restorer_cancel(handle_.get()); }

private:
    struct Free {
        void operator()(bridge_restorer *r) const { bridge_restorer_free(r); }
    };
    std::unique_ptr<bridge_restorer, Free> handle_;
};

}  // namespace bridge

namespace {

struct Rgb8 {
    uint32_t width = 0, height = 0;
    std::vector<unsigned char> px;
};

Rgb8 read_ppm(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::string magic;
    unsigned maxval = 0;
    Rgb8 img;
    f >> magic;
    // Skip comments between header fields.
    auto number = [&f]() {
        while (f >> std::ws && f.peek() == '#') f.ignore(1 << 20, '\n');
        uint32_t v = 0;
        f >> v;
        return v;
    };
    img.width = number();
    img.height = number();
    maxval = number();
    f.get();  // the single whitespace before the samples
    if (!f || magic != "P6" || maxval != 255 || img.width == 0 || img.height == 0)
        throw std::runtime_error(path + ": not an 8-bit binary PPM");
    img.px.resize(static_cast<size_t>(img.width) * img.height * 3);
    f.read(reinterpret_cast<char *>(img.px.data()), static_cast<std::streamsize>(img.px.size()));
    if (!f) throw std::runtime_error(path + ": truncated");
    return img;
}

void write_ppm(const std::string &path, const Rgb8 &img) {
    std::ofstream f(path, std::ios::binary);
    f << "P6\n" << img.width << ' ' << img.height << "\n255\n";
    f.write(reinterpret_cast<const char *>(img.px.data()), static_cast<std::streamsize>(img.px.size()));
    if (!f) throw std::runtime_error("cannot write " + path);
}

bridge_image describe(Rgb8 &img) {
    bridge_image d{};
    d.width = img.width;
    d.height = img.height;
    d.stride = static_cast<size_t>(img.width) * 3;
    d.format = BRIDGE_FORMAT_RGB8;
    d.flags = 0;
    d.data = img.px.data();
    d.size = img.px.size();
    return d;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " MODEL.onnx IN.ppm OUT.ppm [NFE [SEED]]\n";
        return 2;
    }
    try {
        bridge::Model model(argv[1]);
        auto options = bridge::Restorer::default_options();
        if (argc > 4) options.nfe = static_cast<uint32_t>(std::stoul(argv[4]));
        if (argc > 5) options.seed = std::stoull(argv[5]);
        bridge::Restorer restorer(model, options);

        Rgb8 src = read_ppm(argv[2]);
        Rgb8 dst;
        restorer.output_size(src.width, src.height, dst.width, dst.height);
        dst.px.resize(static_cast<size_t>(dst.width) * dst.height * 3);
        bridge_image in = describe(src), out = describe(dst);
        restorer.restore(in, out);
        write_ppm(argv[3], dst);
        std::cout << "restored " << argv[2] << " (" << src.width << "x" << src.height << ", family "
                  << model.family() << ") -> " << argv[3] << " (" << dst.width << "x" << dst.height << ")\n";
    } catch (const bridge::Error &e) {
        std::cerr << "restore_cpp: " << e.what() << "\n";
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "restore_cpp: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
