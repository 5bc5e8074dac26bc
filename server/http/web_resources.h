// The dashboard's files, compiled into the binary (server/http/
// embed_resources.cmake generates the table from server/http/web/ and the
// vendored uPlot). The HTTP port serves nothing else: a path that is not a
// name in this table is not found, whatever it contains.
#ifndef NNLAB_SERVER_HTTP_WEB_RESOURCES_H_
#define NNLAB_SERVER_HTTP_WEB_RESOURCES_H_

#include <cstddef>
#include <string>

namespace nnlab::server {

struct WebResource {
  const char* name;  // "index.html", "uplot.min.js", ...
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

// The resource named exactly `name`, or nullptr.
const WebResource* FindWebResource(const std::string& name);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_HTTP_WEB_RESOURCES_H_
