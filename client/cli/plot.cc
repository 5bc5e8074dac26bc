#include "client/cli/plot.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nnlab::cli {
namespace {

// ---------------------------------------------------------------------------
// Data

bool Finite(double v) { return std::isfinite(v); }

void Push(Series* s, int64_t step, double v) {
  if (Finite(v)) s->emplace_back(step, v);
}

// Moving average over `window` points (geometric mean when `log`), to show
// the trend of per-batch values that jitter from batch to batch.
Series Smooth(const Series& s, size_t window, bool log) {
  if (window <= 1 || s.size() < 3) return s;
  Series out;
  out.reserve(s.size());
  double sum = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    sum += log ? std::log(s[i].second) : s[i].second;
    if (i >= window)
      sum -= log ? std::log(s[i - window].second) : s[i - window].second;
    size_t n = std::min(i + 1, window);
    double mean = sum / static_cast<double>(n);
    out.emplace_back(s[i].first, log ? std::exp(mean) : mean);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Drawing primitives, implemented once for SVG and once for a raster.

struct Color {
  uint8_t r, g, b;
};
constexpr Color kBlack{0, 0, 0};
constexpr Color kGrey{110, 110, 110};
constexpr Color kGrid{225, 225, 225};
constexpr Color kWhite{255, 255, 255};
// Tableau 10: distinguishable line colours.
constexpr Color kPalette[] = {{31, 119, 180},  {255, 127, 14},  {44, 160, 44},
                              {214, 39, 40},   {148, 103, 189}, {140, 86, 75},
                              {227, 119, 194}, {127, 127, 127}, {188, 189, 34},
                              {23, 190, 207}};
Color PaletteColor(size_t i) {
  return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
}
Color Lighter(Color c) {
  auto mix = [](uint8_t v) {
    return static_cast<uint8_t>(v + (255 - v) * 2 / 3);
  };
  return {mix(c.r), mix(c.g), mix(c.b)};
}

enum class Anchor { kStart, kMiddle, kEnd };

struct Point {
  double x, y;
};

class Canvas {
 public:
  virtual ~Canvas() = default;
  virtual void Polyline(const std::vector<Point>& pts, Color c,
                        double width) = 0;
  virtual void FillRect(double x, double y, double w, double h, Color c) = 0;
  // Text with its baseline at y; `big` for titles.
  virtual void Text(double x, double y, const std::string& s, Color c,
                    Anchor anchor, bool big) = 0;
  void Line(double x0, double y0, double x1, double y1, Color c, double width) {
    Polyline({{x0, y0}, {x1, y1}}, c, width);
  }
};

constexpr int kWidth = 1200;
constexpr int kPanelHeight = 330;
// Bitmap text: 5x7 glyphs drawn at this many pixels per font pixel, one
// font pixel of spacing: advance = 6 * scale.
constexpr int kTextScale = 2;
constexpr int kBigTextScale = 3;
constexpr double CharAdvance(bool big) {
  return 6.0 * (big ? kBigTextScale : kTextScale);
}

// 5x7 glyphs for ASCII 32..126 (and the few symbols of the titles), rows
// top to bottom, '#' = ink; g, j, p, q and y have two more rows below the
// baseline.
struct Glyph {
  char32_t code;
  const char* rows;  // 7 (or 9) groups of 5, separated by spaces
};
constexpr Glyph kGlyphs[] = {
    {' ', "..... ..... ..... ..... ..... ..... ....."},
    {'!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."},
    {'"', ".#.#. .#.#. ..... ..... ..... ..... ....."},
    {'#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."},
    {'$', "..#.. .#### #.#.. .###. ..#.# ####. ..#.."},
    {'%', "##... ##..# ...#. ..#.. .#... #..## ...##"},
    {'&', ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#"},
    {'\'', "..#.. ..#.. ..... ..... ..... ..... ....."},
    {'(', "...#. ..#.. .#... .#... .#... ..#.. ...#."},
    {')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."},
    {'*', "..... ..#.. #.#.# .###. #.#.# ..#.. ....."},
    {'+', "..... ..#.. ..#.. ##### ..#.. ..#.. ....."},
    {',', "..... ..... ..... ..... .##.. ..#.. .#..."},
    {'-', "..... ..... ..... ##### ..... ..... ....."},
    {'.', "..... ..... ..... ..... ..... .##.. .##.."},
    {'/', "..... ....# ...#. ..#.. .#... #.... ....."},
    {'0', ".###. #...# #..## #.#.# ##..# #...# .###."},
    {'1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'2', ".###. #...# ....# ...#. ..#.. .#... #####"},
    {'3', "##### ...#. ..#.. ...#. ....# #...# .###."},
    {'4', "...#. ..##. .#.#. #..#. ##### ...#. ...#."},
    {'5', "##### #.... ####. ....# ....# #...# .###."},
    {'6', "..##. .#... #.... ####. #...# #...# .###."},
    {'7', "##### ....# ...#. ..#.. .#... .#... .#..."},
    {'8', ".###. #...# #...# .###. #...# #...# .###."},
    {'9', ".###. #...# #...# .#### ....# ...#. .##.."},
    {':', "..... .##.. .##.. ..... .##.. .##.. ....."},
    {';', "..... .##.. .##.. ..... .##.. ..#.. .#..."},
    {'<', "...#. ..#.. .#... #.... .#... ..#.. ...#."},
    {'=', "..... ..... ##### ..... ##### ..... ....."},
    {'>', ".#... ..#.. ...#. ....# ...#. ..#.. .#..."},
    {'?', ".###. #...# ....# ...#. ..#.. ..... ..#.."},
    {'@', ".###. #...# ....# .##.# #.#.# #.#.# .###."},
    {'A', ".###. #...# #...# ##### #...# #...# #...#"},
    {'B', "####. #...# #...# ####. #...# #...# ####."},
    {'C', ".###. #...# #.... #.... #.... #...# .###."},
    {'D', "###.. #..#. #...# #...# #...# #..#. ###.."},
    {'E', "##### #.... #.... ####. #.... #.... #####"},
    {'F', "##### #.... #.... ####. #.... #.... #...."},
    {'G', ".###. #...# #.... #.### #...# #...# .####"},
    {'H', "#...# #...# #...# ##### #...# #...# #...#"},
    {'I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'J', "..### ...#. ...#. ...#. ...#. #..#. .##.."},
    {'K', "#...# #..#. #.#.. ##... #.#.. #..#. #...#"},
    {'L', "#.... #.... #.... #.... #.... #.... #####"},
    {'M', "#...# ##.## #.#.# #.#.# #...# #...# #...#"},
    {'N', "#...# #...# ##..# #.#.# #..## #...# #...#"},
    {'O', ".###. #...# #...# #...# #...# #...# .###."},
    {'P', "####. #...# #...# ####. #.... #.... #...."},
    {'Q', ".###. #...# #...# #...# #.#.# #..#. .##.#"},
    {'R', "####. #...# #...# ####. #.#.. #..#. #...#"},
    {'S', ".#### #.... #.... .###. ....# ....# ####."},
    {'T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."},
    {'U', "#...# #...# #...# #...# #...# #...# .###."},
    {'V', "#...# #...# #...# #...# #...# .#.#. ..#.."},
    {'W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."},
    {'X', "#...# #...# .#.#. ..#.. .#.#. #...# #...#"},
    {'Y', "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."},
    {'Z', "##### ....# ...#. ..#.. .#... #.... #####"},
    {'[', ".###. .#... .#... .#... .#... .#... .###."},
    {'\\', "..... #.... .#... ..#.. ...#. ....# ....."},
    {']', ".###. ...#. ...#. ...#. ...#. ...#. .###."},
    {'^', "..#.. .#.#. #...# ..... ..... ..... ....."},
    {'_', "..... ..... ..... ..... ..... ..... #####"},
    {'`', ".#... ..#.. ..... ..... ..... ..... ....."},
    {'a', "..... ..... .###. ....# .#### #...# .####"},
    {'b', "#.... #.... #.##. ##..# #...# #...# ####."},
    {'c', "..... ..... .###. #.... #.... #...# .###."},
    {'d', "....# ....# .##.# #..## #...# #...# .####"},
    {'e', "..... ..... .###. #...# ##### #.... .###."},
    {'f', "..##. .#..# .#... ###.. .#... .#... .#..."},
    {'g', "..... ..... .#### #...# #...# #...# .#### ....# .###."},
    {'h', "#.... #.... #.##. ##..# #...# #...# #...#"},
    {'i', "..#.. ..... .##.. ..#.. ..#.. ..#.. .###."},
    {'j', "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##.."},
    {'k', "#.... #.... #..#. #.#.. ##... #.#.. #..#."},
    {'l', ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###."},
    {'m', "..... ..... ##.#. #.#.# #.#.# #...# #...#"},
    {'n', "..... ..... #.##. ##..# #...# #...# #...#"},
    {'o', "..... ..... .###. #...# #...# #...# .###."},
    {'p', "..... ..... ####. #...# #...# #...# ####. #.... #...."},
    {'q', "..... ..... .#### #...# #...# #...# .#### ....# ....#"},
    {'r', "..... ..... #.##. ##..# #.... #.... #...."},
    {'s', "..... ..... .###. #.... .###. ....# ####."},
    {'t', ".#... .#... ###.. .#... .#... .#..# ..##."},
    {'u', "..... ..... #...# #...# #...# #..## .##.#"},
    {'v', "..... ..... #...# #...# #...# .#.#. ..#.."},
    {'w', "..... ..... #...# #...# #.#.# #.#.# .#.#."},
    {'x', "..... ..... #...# .#.#. ..#.. .#.#. #...#"},
    {'y', "..... ..... #...# #...# #...# #...# .#### ....# .###."},
    {'z', "..... ..... ##### ...#. ..#.. .#... #####"},
    {'{', "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#."},
    {'|', "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."},
    {'}', ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#..."},
    {'~', "..... ..... .#... #.#.# ...#. ..... ....."},
    {U'\u03b4', ".##.. #.... .#... .###. #...# #...# .###."},
    {U'\u02e1', "..#.. ..#.. ..#.. ..##. ..... ..... ....."},
    {U'\u2016', ".#.#. .#.#. .#.#. .#.#. .#.#. .#.#. .#.#."},
};

const Glyph* FindGlyph(char32_t c) {
  for (const Glyph& g : kGlyphs) {
    if (g.code == c) return &g;
  }
  return FindGlyph('?');
}

// Decodes UTF-8 (enough for the labels used here).
std::u32string Utf32(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += c;
      ++i;
    } else if ((c >> 5) == 6 && i + 1 < s.size()) {
      out += static_cast<char32_t>(((c & 0x1f) << 6) | (s[i + 1] & 0x3f));
      i += 2;
    } else if ((c >> 4) == 14 && i + 2 < s.size()) {
      out += static_cast<char32_t>(
          ((c & 0x0f) << 12) | ((s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f));
      i += 3;
    } else {
      out += U'?';
      ++i;
      while (i < s.size() && (static_cast<unsigned char>(s[i]) >> 6) == 2) ++i;
    }
  }
  return out;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Rgb(Color c) {
  return absl::StrFormat("#%02x%02x%02x", c.r, c.g, c.b);
}

class SvgCanvas : public Canvas {
 public:
  SvgCanvas(int width, int height) {
    absl::StrAppendFormat(
        &out_,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
        "height=\"%d\" viewBox=\"0 0 %d %d\" "
        "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\">\n",
        width, height, width, height);
  }
  void Polyline(const std::vector<Point>& pts, Color c, double width) override {
    if (pts.size() < 2) return;
    absl::StrAppend(&out_, "<polyline fill=\"none\" stroke=\"", Rgb(c),
                    "\" stroke-width=\"", width,
                    "\" stroke-linejoin=\"round\" points=\"");
    for (const Point& p : pts) {
      absl::StrAppendFormat(&out_, "%.1f,%.1f ", p.x, p.y);
    }
    out_ += "\"/>\n";
  }
  void FillRect(double x, double y, double w, double h, Color c) override {
    absl::StrAppendFormat(
        &out_,
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
        "fill=\"%s\"/>\n",
        x, y, w, h, Rgb(c));
  }
  void Text(double x, double y, const std::string& s, Color c, Anchor anchor,
            bool big) override {
    const char* a = anchor == Anchor::kStart    ? "start"
                    : anchor == Anchor::kMiddle ? "middle"
                                                : "end";
    // A monospace font whose advance (0.6 em) matches the raster glyphs.
    absl::StrAppendFormat(
        &out_,
        "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"%.1f\" "
        "text-anchor=\"%s\">%s</text>\n",
        x, y, Rgb(c), CharAdvance(big) / 0.6, a, XmlEscape(s));
  }
  std::string Finish() { return out_ + "</svg>\n"; }

 private:
  std::string out_;
};

class RasterCanvas : public Canvas {
 public:
  RasterCanvas(int width, int height)
      : w_(width),
        h_(height),
        px_(static_cast<size_t>(width) * height * 3, 255) {}

  void Polyline(const std::vector<Point>& pts, Color c, double width) override {
    for (size_t i = 1; i < pts.size(); ++i)
      Segment(pts[i - 1], pts[i], c, width);
  }
  void FillRect(double x, double y, double w, double h, Color c) override {
    for (int py = std::max(0, static_cast<int>(std::lround(y)));
         py < std::min(h_, static_cast<int>(std::lround(y + h))); ++py) {
      for (int px = std::max(0, static_cast<int>(std::lround(x)));
           px < std::min(w_, static_cast<int>(std::lround(x + w))); ++px) {
        Blend(px, py, c, 1.0);
      }
    }
  }
  void Text(double x, double y, const std::string& s, Color c, Anchor anchor,
            bool big) override {
    const int scale = big ? kBigTextScale : kTextScale;
    std::u32string text = Utf32(s);
    double width = CharAdvance(big) * static_cast<double>(text.size());
    double left = anchor == Anchor::kStart    ? x
                  : anchor == Anchor::kMiddle ? x - width / 2
                                              : x - width;
    int top = static_cast<int>(std::lround(y)) - 7 * scale;
    int pen = static_cast<int>(std::lround(left));
    for (char32_t ch : text) {
      const char* rows = FindGlyph(ch)->rows;
      const int n_rows = static_cast<int>((std::strlen(rows) + 1) / 6);
      for (int r = 0; r < n_rows; ++r) {
        for (int col = 0; col < 5; ++col) {
          if (rows[r * 6 + col] != '#') continue;
          for (int dy = 0; dy < scale; ++dy) {
            for (int dx = 0; dx < scale; ++dx) {
              Blend(pen + col * scale + dx, top + r * scale + dy, c, 1.0);
            }
          }
        }
      }
      pen += 6 * scale;
    }
  }
  const std::vector<uint8_t>& pixels() const { return px_; }

 private:
  void Blend(int x, int y, Color c, double a) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_ || a <= 0) return;
    a = std::min(a, 1.0);
    uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
    p[0] = static_cast<uint8_t>(std::lround(p[0] + (c.r - p[0]) * a));
    p[1] = static_cast<uint8_t>(std::lround(p[1] + (c.g - p[1]) * a));
    p[2] = static_cast<uint8_t>(std::lround(p[2] + (c.b - p[2]) * a));
  }
  // Anti-aliased thick segment: coverage falls off linearly with the
  // distance from the segment over one pixel.
  void Segment(Point a, Point b, Color c, double width) {
    const double r = width / 2;
    int x0 = static_cast<int>(std::floor(std::min(a.x, b.x) - r - 1));
    int x1 = static_cast<int>(std::ceil(std::max(a.x, b.x) + r + 1));
    int y0 = static_cast<int>(std::floor(std::min(a.y, b.y) - r - 1));
    int y1 = static_cast<int>(std::ceil(std::max(a.y, b.y) + r + 1));
    x0 = std::max(x0, 0);
    y0 = std::max(y0, 0);
    x1 = std::min(x1, w_ - 1);
    y1 = std::min(y1, h_ - 1);
    const double dx = b.x - a.x, dy = b.y - a.y;
    const double len2 = dx * dx + dy * dy;
    for (int y = y0; y <= y1; ++y) {
      for (int x = x0; x <= x1; ++x) {
        double px = x + 0.5, py = y + 0.5;
        double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
        t = std::clamp(t, 0.0, 1.0);
        double ex = a.x + t * dx - px, ey = a.y + t * dy - py;
        double d = std::sqrt(ex * ex + ey * ey);
        double cover = r + 0.5 - d;
        if (cover > 0) Blend(x, y, c, cover);
      }
    }
  }

  int w_, h_;
  std::vector<uint8_t> px_;
};

// ---------------------------------------------------------------------------
// The figure

struct Curve {
  std::string label;
  Series points;
  Color color;
  double width;
};

struct Panel {
  std::string title;
  bool log_y = false;
  std::vector<Curve> curves;
};

std::string TickLabel(double v, bool log) {
  if (log) {
    int e = static_cast<int>(std::lround(std::log10(v)));
    return absl::StrFormat("1e%d", e);
  }
  if (v == 0) return "0";
  return absl::StrFormat("%g", v);
}

// "Nice" linear ticks (1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> LinearTicks(double lo, double hi, int target) {
  double span = hi - lo;
  if (span <= 0) span = std::max(std::abs(hi), 1.0);
  double raw = span / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9;
       t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

// The legend of a panel. Beside the title, right-aligned, when it fits
// there; otherwise in rows below the title, in columns as wide as the
// widest entry (labels too long for the figure are cut, ending in "..."),
// at most kMaxLegendRows rows (the last entry then says how many are not
// shown). The panel grows by the rows beyond the first.
constexpr double kPlotLeft = 130, kPlotRight = kWidth - 40;
constexpr double kLegendRow = 24;
constexpr int kMaxLegendRows = 12;
// Marker (30) before a label and a gap (20) after it.
constexpr double kLegendPad = 50;

struct LegendItem {
  std::string label;
  Color color;
  double x = 0;  // Where the label starts (its marker is left of it).
  int row = 0;
  bool marker = true;
};
struct Legend {
  std::vector<LegendItem> items;
  bool below = false;
  int rows = 0;
};

double TextWidth(const std::string& s, bool big) {
  return CharAdvance(big) * static_cast<double>(Utf32(s).size());
}

// `s` cut to at most `chars` code points: its first two thirds and its
// last third around "...", since the settings that tell trials apart may
// come at either end.
std::string Cut(const std::string& s, size_t chars) {
  const std::u32string u = Utf32(s);
  if (u.size() <= chars) return s;
  const size_t keep = chars > 3 ? chars - 3 : 0;
  const size_t tail = keep / 3, head = keep - tail;
  // Byte offset of code point `n`.
  auto offset = [&s](size_t n) {
    size_t i = 0, seen = 0;
    for (; i < s.size(); ++i) {
      if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && seen++ == n) {
        break;
      }
    }
    return i;
  };
  return s.substr(0, offset(head)) + "..." + s.substr(offset(u.size() - tail));
}

Legend LayoutLegend(const Panel& panel) {
  Legend l;
  double total = 0, widest = 0;
  for (const Curve& cv : panel.curves) {
    if (cv.label.empty()) continue;
    l.items.push_back({cv.label, cv.color});
    const double w = TextWidth(cv.label, false) + kLegendPad;
    total += w;
    widest = std::max(widest, w);
  }
  if (l.items.empty()) return l;
  const double title_width = TextWidth(panel.title, true);
  if (kPlotLeft + title_width + 30 + total <= kPlotRight) {
    l.rows = 1;
    double x = kPlotRight;
    for (auto it = l.items.rbegin(); it != l.items.rend(); ++it) {
      x -= TextWidth(it->label, false);
      it->x = x;
      x -= kLegendPad;
    }
    return l;
  }
  l.below = true;
  const double avail = kPlotRight - kPlotLeft + 20;  // The last gap may go.
  const double column = std::min(widest, avail);
  const size_t columns =
      std::max<size_t>(1, static_cast<size_t>(avail / column));
  const size_t chars =
      static_cast<size_t>((column - kLegendPad) / CharAdvance(false));
  const size_t shown_max = columns * kMaxLegendRows;
  if (l.items.size() > shown_max) {
    const size_t hidden = l.items.size() - (shown_max - 1);
    l.items.resize(shown_max - 1);
    LegendItem more{absl::StrCat("(", hidden, " more not shown)"), kBlack};
    more.marker = false;
    l.items.push_back(more);
  }
  for (size_t i = 0; i < l.items.size(); ++i) {
    LegendItem& item = l.items[i];
    item.label = Cut(item.label, chars);
    item.row = static_cast<int>(i / columns);
    item.x = kPlotLeft + 30 + static_cast<double>(i % columns) * column;
  }
  l.rows = static_cast<int>((l.items.size() + columns - 1) / columns);
  return l;
}

// A panel's height: kPanelHeight, and the legend's rows beyond the first.
double PanelHeight(const Panel& panel) {
  const Legend l = LayoutLegend(panel);
  return kPanelHeight + (l.below ? (l.rows - 1) * kLegendRow : 0);
}

void DrawPanel(const Panel& panel, double top, int64_t max_step, bool x_label,
               Canvas* c) {
  const double left = kPlotLeft, right = kPlotRight;
  const Legend legend = LayoutLegend(panel);
  const double legend_y = legend.below ? top + 62 : top + 32;
  const double plot_top =
      top + (legend.below ? 80 + (legend.rows - 1) * kLegendRow : 50);
  const double plot_bottom = top + PanelHeight(panel) - 55;
  c->Text(left, top + 32, panel.title, kBlack, Anchor::kStart, /*big=*/true);

  // Value range over every curve.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Curve& cv : panel.curves) {
    for (const auto& [step, v] : cv.points) {
      if (panel.log_y && v <= 0) continue;
      double y = panel.log_y ? std::log10(v) : v;
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  }
  if (!std::isfinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (panel.log_y) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
    if (hi - lo < 1) hi = lo + 1;
  } else {
    if (lo > 0 && lo < 0.5 * hi) lo = 0;  // show loss from zero
    if (hi - lo < 1e-12) {
      hi += 0.5;
      lo -= 0.5;
    }
    double pad = (hi - lo) * 0.05;
    hi += pad;
    if (lo != 0) lo -= pad;
  }
  const double x_max = std::max<int64_t>(max_step, 1);
  auto sx = [&](double step) { return left + (right - left) * step / x_max; };
  auto sy = [&](double v) {
    double y = panel.log_y ? std::log10(std::max(v, 1e-300)) : v;
    y = std::clamp(y, lo, hi);
    return plot_bottom - (plot_bottom - plot_top) * (y - lo) / (hi - lo);
  };

  // Grid and ticks.
  std::vector<double> yticks;
  if (panel.log_y) {
    int stride = std::max(1, static_cast<int>((hi - lo) / 6));
    for (double e = lo; e <= hi + 1e-9; e += stride)
      yticks.push_back(std::pow(10.0, e));
  } else {
    yticks = LinearTicks(lo, hi, 5);
  }
  for (double t : yticks) {
    double y = sy(t);
    c->Line(left, y, right, y, kGrid, 1);
    c->Text(left - 10, y + 7, TickLabel(t, panel.log_y), kGrey, Anchor::kEnd,
            false);
  }
  for (double t : LinearTicks(0, x_max, 8)) {
    double x = sx(t);
    c->Line(x, plot_top, x, plot_bottom, kGrid, 1);
    c->Text(x, plot_bottom + 24, TickLabel(t, false), kGrey, Anchor::kMiddle,
            false);
  }
  c->Line(left, plot_bottom, right, plot_bottom, kGrey, 1.5);
  c->Line(left, plot_top, left, plot_bottom, kGrey, 1.5);
  if (x_label) {
    c->Text((left + right) / 2, plot_bottom + 50, "step", kBlack,
            Anchor::kMiddle, false);
  }

  // Curves, then the legend along the top edge (right-aligned).
  for (const Curve& cv : panel.curves) {
    std::vector<Point> pts;
    pts.reserve(cv.points.size());
    for (const auto& [step, v] : cv.points) {
      if (panel.log_y && v <= 0) continue;
      pts.push_back({sx(static_cast<double>(step)), sy(v)});
    }
    if (pts.size() == 1) {
      c->FillRect(pts[0].x - 3, pts[0].y - 3, 6, 6, cv.color);
    }
    c->Polyline(pts, cv.color, cv.width);
  }
  for (const LegendItem& item : legend.items) {
    const double y = legend_y + item.row * kLegendRow;
    c->Text(item.x, y, item.label, kBlack, Anchor::kStart, false);
    if (item.marker) {
      c->Line(item.x - 30, y - 7, item.x - 8, y - 7, item.color, 3);
    }
  }
}

std::vector<Panel> BuildPanels(const TrainingHistory& h, int64_t* max_step) {
  *max_step = 0;
  auto track = [&](const Series& s) {
    for (const auto& p : s) *max_step = std::max(*max_step, p.first);
  };
  for (const Series* s : {&h.train_loss, &h.eval_loss, &h.d_loss, &h.g_loss,
                          &h.train_accuracy, &h.eval_accuracy}) {
    track(*s);
  }
  for (const auto& l : h.learning_speed) track(l.second);
  auto window = [](const Series& s) {
    return std::max<size_t>(1, s.size() / 100);
  };

  std::vector<Panel> panels;
  if (!h.train_loss.empty() || !h.eval_loss.empty()) {
    Panel p{"loss", false, {}};
    if (!h.train_loss.empty()) {
      p.curves.push_back({"", h.train_loss, Lighter(kPalette[0]), 1});
      p.curves.push_back({"training batch (mean)",
                          Smooth(h.train_loss, window(h.train_loss), false),
                          kPalette[0], 2.5});
    }
    if (!h.eval_loss.empty()) {
      p.curves.push_back({"test set", h.eval_loss, kPalette[1], 2.5});
    }
    panels.push_back(std::move(p));
  }
  if (!h.d_loss.empty() || !h.g_loss.empty()) {
    Panel p{"GAN losses", false, {}};
    p.curves.push_back(
        {"D", Smooth(h.d_loss, window(h.d_loss), false), kPalette[0], 2});
    p.curves.push_back(
        {"G", Smooth(h.g_loss, window(h.g_loss), false), kPalette[1], 2});
    panels.push_back(std::move(p));
  }
  if (!h.train_accuracy.empty() || !h.eval_accuracy.empty()) {
    Panel p{"accuracy", false, {}};
    if (!h.train_accuracy.empty()) {
      p.curves.push_back(
          {"training batch (mean)",
           Smooth(h.train_accuracy, window(h.train_accuracy), false),
           kPalette[0], 2.5});
    }
    if (!h.eval_accuracy.empty()) {
      p.curves.push_back({"test set", h.eval_accuracy, kPalette[1], 2.5});
    }
    panels.push_back(std::move(p));
  }
  if (!h.learning_speed.empty()) {
    Panel p{u8"learning speed \u2016\u03b4\u02e1\u2016 per layer (log scale)",
            true,
            {}};
    size_t i = 0;
    for (const auto& [name, s] : h.learning_speed) {
      p.curves.push_back({name,
                          Smooth(s, std::max<size_t>(1, s.size() / 200), true),
                          PaletteColor(i++), 2});
    }
    panels.push_back(std::move(p));
  }
  return panels;
}

int FigureHeight(const std::vector<Panel>& panels) {
  double h = 60 + 20;
  for (const Panel& p : panels) h += PanelHeight(p);
  return static_cast<int>(h);
}

void DrawFigure(const TrainingHistory& h, const std::vector<Panel>& panels,
                int64_t max_step, Canvas* c) {
  c->FillRect(0, 0, kWidth, FigureHeight(panels), kWhite);
  c->Text(kWidth / 2.0, 42, h.title, kBlack, Anchor::kMiddle, /*big=*/true);
  double top = 60;
  for (size_t i = 0; i < panels.size(); ++i) {
    DrawPanel(panels[i], top, max_step, i + 1 == panels.size(), c);
    top += PanelHeight(panels[i]);
  }
}

}  // namespace

void TrainingHistory::Add(const v1::MetricEvent& e) {
  switch (e.phase()) {
    case v1::PHASE_TRAIN:
      Push(&train_loss, e.step(), e.loss());
      if (e.accuracy() >= 0) Push(&train_accuracy, e.step(), e.accuracy());
      break;
    case v1::PHASE_EVAL:
      Push(&eval_loss, e.step(), e.loss());
      if (e.accuracy() >= 0) Push(&eval_accuracy, e.step(), e.accuracy());
      break;
    case v1::PHASE_GAN_D:
      Push(&d_loss, e.step(), e.loss());
      break;
    case v1::PHASE_GAN_G:
      Push(&g_loss, e.step(), e.loss());
      break;
    default:
      break;
  }
  for (const v1::LayerStats& l : e.layers()) {
    if (!(l.grad_bias_norm() > 0) || !Finite(l.grad_bias_norm())) continue;
    auto it = std::find_if(learning_speed.begin(), learning_speed.end(),
                           [&](const auto& p) { return p.first == l.name(); });
    if (it == learning_speed.end()) {
      learning_speed.emplace_back(l.name(), Series());
      it = std::prev(learning_speed.end());
    }
    it->second.emplace_back(e.step(), l.grad_bias_norm());
  }
}

bool TrainingHistory::empty() const {
  return train_loss.empty() && eval_loss.empty() && d_loss.empty() &&
         g_loss.empty() && learning_speed.empty();
}

std::string RenderSvg(const TrainingHistory& history) {
  int64_t max_step;
  std::vector<Panel> panels = BuildPanels(history, &max_step);
  SvgCanvas svg(kWidth, FigureHeight(panels));
  DrawFigure(history, panels, max_step, &svg);
  return svg.Finish();
}

namespace {

// Writes a figure `height` pixels tall, painted by `draw`, as SVG (*.svg)
// or PNG (*.png); WritePlot's errors.
absl::Status WriteFigure(const std::string& path, int height,
                         const std::function<void(Canvas*)>& draw) {
  if (absl::EndsWithIgnoreCase(path, ".svg")) {
    SvgCanvas svg(kWidth, height);
    draw(&svg);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << svg.Finish();
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
    return absl::OkStatus();
  }
  if (!absl::EndsWithIgnoreCase(path, ".png")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out ", path, ": the file name must end in .svg or .png"));
  }
  RasterCanvas raster(kWidth, height);
  draw(&raster);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = kWidth;
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&image, path.c_str(), 0, raster.pixels().data(),
                               0, nullptr)) {
    std::string msg = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat("writing ", path, ": ", msg));
  }
  return absl::OkStatus();
}

absl::Status WriteHistory(const TrainingHistory& history,
                          const std::string& path) {
  int64_t max_step;
  std::vector<Panel> panels = BuildPanels(history, &max_step);
  return WriteFigure(path, FigureHeight(panels), [&](Canvas* c) {
    DrawFigure(history, panels, max_step, c);
  });
}

}  // namespace

absl::Status WriteGrayPng(const std::string& path, int width, int height,
                          const std::vector<uint8_t>& pixels) {
  if (width <= 0 || height <= 0 ||
      pixels.size() != static_cast<size_t>(width) * height) {
    return absl::InvalidArgumentError("image size does not match its pixels");
  }
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0,
                               nullptr)) {
    std::string msg = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat("writing ", path, ": ", msg));
  }
  return absl::OkStatus();
}

absl::Status WritePlot(const TrainingHistory& history,
                       const std::string& path) {
  if (history.empty()) {
    return absl::FailedPreconditionError("the job has no events to plot yet");
  }
  return WriteHistory(history, path);
}

// ---------------------------------------------------------------------------
// Free-form figures (PlotPanel): the same panels, any integer x.

namespace {

std::vector<Panel> ToPanels(const std::vector<PlotPanel>& in, int64_t* max_x) {
  *max_x = 0;
  std::vector<Panel> out;
  for (const PlotPanel& p : in) {
    Panel panel{p.title, p.log_y, {}};
    size_t i = 0;
    for (const auto& [label, s] : p.curves) {
      for (const auto& point : s) *max_x = std::max(*max_x, point.first);
      panel.curves.push_back({label, s, PaletteColor(i++), 2});
    }
    out.push_back(std::move(panel));
  }
  return out;
}

// Each panel with its own x label, where DrawPanel puts "step".
void DrawPanels(const std::string& title, const std::vector<Panel>& panels,
                const std::vector<PlotPanel>& spec, int64_t max_x, Canvas* c) {
  c->FillRect(0, 0, kWidth, FigureHeight(panels), kWhite);
  c->Text(kWidth / 2.0, 42, title, kBlack, Anchor::kMiddle, /*big=*/true);
  double top = 60;
  for (size_t i = 0; i < panels.size(); ++i) {
    DrawPanel(panels[i], top, max_x, false, c);
    top += PanelHeight(panels[i]);
    c->Text((kPlotLeft + kPlotRight) / 2.0, top - 5, spec[i].x_label, kBlack,
            Anchor::kMiddle, false);
  }
}

}  // namespace

namespace {

std::vector<Panel> BuildOverlayPanels(const std::vector<OverlayTrial>& trials,
                                      const std::string& layer,
                                      int64_t* max_step) {
  *max_step = 0;
  Panel loss{"training loss (mean over batches)", false, {}};
  Panel acc{"test accuracy", false, {}};
  Panel speed{absl::StrCat(u8"learning speed \u2016\u03b4\u02e1\u2016 of ",
                           layer, " (log scale)"),
              true,
              {}};
  for (size_t i = 0; i < trials.size(); ++i) {
    const TrainingHistory& h = trials[i].history;
    const Color color = PaletteColor(i);
    for (const Series* s : {&h.train_loss, &h.eval_accuracy}) {
      for (const auto& p : *s) *max_step = std::max(*max_step, p.first);
    }
    if (!h.train_loss.empty()) {
      loss.curves.push_back(
          {trials[i].label,
           Smooth(h.train_loss, std::max<size_t>(1, h.train_loss.size() / 100),
                  false),
           color, 2});
    }
    if (!h.eval_accuracy.empty()) {
      acc.curves.push_back({trials[i].label, h.eval_accuracy, color, 2});
    }
    for (const auto& [name, s] : h.learning_speed) {
      if (layer.empty() || name != layer) continue;
      for (const auto& p : s) *max_step = std::max(*max_step, p.first);
      speed.curves.push_back(
          {trials[i].label,
           Smooth(s, std::max<size_t>(1, s.size() / 200), true), color, 2});
    }
  }
  std::vector<Panel> panels;
  for (Panel* p : {&loss, &acc, &speed}) {
    if (!p->curves.empty()) panels.push_back(std::move(*p));
  }
  return panels;
}

}  // namespace

std::string RenderPanelsSvg(const std::string& title,
                            const std::vector<PlotPanel>& panels) {
  int64_t max_x;
  std::vector<Panel> drawn = ToPanels(panels, &max_x);
  SvgCanvas svg(kWidth, FigureHeight(drawn));
  DrawPanels(title, drawn, panels, max_x, &svg);
  return svg.Finish();
}

absl::Status WritePanels(const std::string& title,
                         const std::vector<PlotPanel>& panels,
                         const std::string& path) {
  if (panels.empty()) {
    return absl::FailedPreconditionError("nothing to plot");
  }
  int64_t max_x;
  std::vector<Panel> drawn = ToPanels(panels, &max_x);
  return WriteFigure(path, FigureHeight(drawn), [&](Canvas* c) {
    DrawPanels(title, drawn, panels, max_x, c);
  });
}

absl::Status WriteOverlayPlot(const std::string& title,
                              const std::vector<OverlayTrial>& trials,
                              const std::string& layer,
                              const std::string& path) {
  int64_t max_step;
  const std::vector<Panel> panels =
      BuildOverlayPanels(trials, layer, &max_step);
  if (panels.empty()) {
    return absl::FailedPreconditionError("the jobs have no events to plot yet");
  }
  TrainingHistory header;  // DrawFigure reads only the title.
  header.title = title;
  return WriteFigure(path, FigureHeight(panels), [&](Canvas* c) {
    DrawFigure(header, panels, max_step, c);
  });
}

}  // namespace nnlab::cli
