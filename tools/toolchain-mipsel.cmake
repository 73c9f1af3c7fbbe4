# Cross toolchain for mipsel routers, using Debian's cross compiler (mipsel-linux-gnu-g++) and the
# multiarch -dev packages (dpkg --add-architecture; see tools/cross-build.sh).
set(CMAKE_SYSTEM_PROCESSOR mips)
set(MPUDP_CROSS_TRIPLET mipsel-linux-gnu)
set(MPUDP_QEMU_ARCH mipsel)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
