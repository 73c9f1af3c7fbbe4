# Shared part of the Debian cross toolchains (tools/toolchain-<arch>.cmake set
# CMAKE_SYSTEM_PROCESSOR, MPUDP_CROSS_TRIPLET and MPUDP_QEMU_ARCH, then include this).
set(CMAKE_SYSTEM_NAME Linux)

set(CMAKE_C_COMPILER ${MPUDP_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${MPUDP_CROSS_TRIPLET}-g++)
set(CMAKE_STRIP ${MPUDP_CROSS_TRIPLET}-strip CACHE FILEPATH "")

# Debian multiarch: target headers in /usr/include (+ /usr/include/<triplet>), target
# libraries and CMake package files in /usr/lib/<triplet>; the cross toolchain's own
# sysroot bits in /usr/<triplet>. CMAKE_LIBRARY_ARCHITECTURE makes find_library and
# find_package look in /usr/lib/<triplet> (never the host triplet), so BOTH is safe.
set(CMAKE_LIBRARY_ARCHITECTURE ${MPUDP_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH /usr/${MPUDP_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# yaml-cpp: the host's headers and the target's runtime library (see the file there).
set(yaml-cpp_DIR ${CMAKE_CURRENT_LIST_DIR}/cross-yaml-cpp CACHE PATH "" FORCE)

# pkg-config must see only the target's .pc files: the multiarch ones, and the libraries
# tools/cross-build.sh unpacked into the build tree (OpenSSL, see there).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${MPUDP_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
if(DEFINED ENV{MPUDP_CROSS_PKG_CONFIG_PATH})
  set(MPUDP_CROSS_PKG_CONFIG_PATH "$ENV{MPUDP_CROSS_PKG_CONFIG_PATH}" CACHE PATH "" FORCE)
endif()
if(MPUDP_CROSS_PKG_CONFIG_PATH)
  set(ENV{PKG_CONFIG_LIBDIR} ${MPUDP_CROSS_PKG_CONFIG_PATH}:$ENV{PKG_CONFIG_LIBDIR})
endif()
set(ENV{PKG_CONFIG_PATH} "")

# Unit tests run under user-mode qemu (ctest prefixes each executable with this).
# `-L /`: no path remapping, so the program interpreter is the multiarch one
# (libc6:<debarch>, /lib/<triplet>), the same glibc build as the libc.so.6 the
# executables load through the host's ld.so.cache. ld.so and libc.so.6 must be one build
# (they share the private struct rtld_global). `-L /usr/<triplet>` took the loader of
# the cross toolchain's libc6-<debarch>-cross (bookworm: 2.36-8) next to libc6:<debarch>
# (2.36-9+deb12u14, _rtld_global 8 bytes larger): a fork() child then walked the
# thread-stack list at a shifted offset and spun forever (glibc's reclaim_stacks), and
# pthread_create() hung as well, which hung unit.privileges (a fork) and unit.ctl (a
# thread). A five-line C program doing either hangs the same way.
find_program(MPUDP_QEMU NAMES qemu-${MPUDP_QEMU_ARCH}-static qemu-${MPUDP_QEMU_ARCH})
if(MPUDP_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MPUDP_QEMU} -L /)
endif()
