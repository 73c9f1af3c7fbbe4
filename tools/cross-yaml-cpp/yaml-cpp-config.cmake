# find_package(yaml-cpp) for cross builds (tools/toolchain-*.cmake point yaml-cpp_DIR
# here). Debian bookworm's libyaml-cpp-dev is not Multi-Arch: same, so installing
# libyaml-cpp-dev:arm64 would remove the host's libyaml-cpp-dev:amd64 (and the native
# builds with it). The headers are architecture-independent, so the cross build uses the
# host's (/usr/include/yaml-cpp) and links the target's runtime library from
# libyaml-cpp0.7:<arch>, which is Multi-Arch: same and installs next to the host's.
find_library(YAML_CPP_CROSS_LIBRARY NAMES libyaml-cpp.so.0.7 yaml-cpp
             PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE} NO_DEFAULT_PATH)
find_path(YAML_CPP_CROSS_INCLUDE_DIR yaml-cpp/yaml.h PATHS /usr/include NO_DEFAULT_PATH)
if(NOT YAML_CPP_CROSS_LIBRARY OR NOT YAML_CPP_CROSS_INCLUDE_DIR)
  set(yaml-cpp_FOUND FALSE)
  set(yaml-cpp_NOT_FOUND_MESSAGE "need libyaml-cpp0.7:<arch> and the host's libyaml-cpp-dev")
  return()
endif()
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp SHARED IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES
    IMPORTED_LOCATION ${YAML_CPP_CROSS_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${YAML_CPP_CROSS_INCLUDE_DIR})
endif()
set(yaml-cpp_FOUND TRUE)
