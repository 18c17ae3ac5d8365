# Finds crepe's dependencies. Debian's -dev packages are found as installed. A machine without them
# (a GPU box with only a PyTorch wheel's LibTorch, say) can give CREPE_THIRD_PARTY_DIR, a folder with
# the header-only libraries as their upstream releases lay them out:
#   CLI11/include/CLI/CLI.hpp
#   nlohmann_json/include/nlohmann/json.hpp
#   spdlog/include/spdlog/spdlog.h        (used header-only)
#   fmt/include/fmt/core.h                 (only for a spdlog built against an external fmt, as Debian's
#                                           is; used header-only)
#   googletest/CMakeLists.txt              (GoogleTest source, built with the tests)
#   pcre2/include/pcre2.h + pcre2/lib/libpcre2-8.*   (only if the system has no libpcre2-8)
set(CREPE_THIRD_PARTY_DIR "" CACHE PATH "Folder with header-only dependencies for machines without Debian's -dev packages")

function(crepe_header_only target dir header)
  if(NOT TARGET ${target})
    if(NOT EXISTS "${CREPE_THIRD_PARTY_DIR}/${dir}/include/${header}")
      message(FATAL_ERROR "${target} not found: install its Debian package or set CREPE_THIRD_PARTY_DIR to a folder "
                          "containing ${dir}/include/${header}")
    endif()
    add_library(${target} INTERFACE IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CREPE_THIRD_PARTY_DIR}/${dir}/include")
    message(STATUS "${target}: header-only from ${CREPE_THIRD_PARTY_DIR}/${dir}")
  endif()
endfunction()

find_package(CLI11 CONFIG QUIET)
crepe_header_only(CLI11::CLI11 CLI11 CLI/CLI.hpp)
find_package(nlohmann_json CONFIG QUIET)
crepe_header_only(nlohmann_json::nlohmann_json nlohmann_json nlohmann/json.hpp)
find_package(spdlog CONFIG QUIET)
if(NOT TARGET spdlog::spdlog)
  crepe_header_only(spdlog::spdlog spdlog spdlog/spdlog.h)
  set_property(TARGET spdlog::spdlog APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS SPDLOG_HEADER_ONLY)
  # Upstream spdlog bundles fmt; Debian's headers (scripts/gpu-prepare.sh copies those) define
  # SPDLOG_FMT_EXTERNAL and need fmt beside them, header-only too.
  if(EXISTS "${CREPE_THIRD_PARTY_DIR}/fmt/include/fmt/core.h")
    set_property(TARGET spdlog::spdlog APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${CREPE_THIRD_PARTY_DIR}/fmt/include")
    set_property(TARGET spdlog::spdlog APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY)
    message(STATUS "fmt: header-only from ${CREPE_THIRD_PARTY_DIR}/fmt")
  endif()
endif()

# LibTorch 2.x ships its own, newer fmt in its include folder (fmt 12 with LibTorch 2.13), which
# would shadow the fmt spdlog was written for: Debian's spdlog 1.10 does not compile against fmt >= 10.
# Then a folder holding only a link to spdlog's fmt is put first on every include path
# (CREPE_FMT_FIRST_DIR, applied to crepe_core in CMakeLists.txt).
set(CREPE_FMT_FIRST_DIR "")
set(torch_fmt "")
foreach(dir IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${dir}/fmt/core.h")
    set(torch_fmt "${dir}")
  endif()
endforeach()
if(torch_fmt)
  set(spdlog_fmt "")
  if(EXISTS "${CREPE_THIRD_PARTY_DIR}/fmt/include/fmt/core.h")  # header-only spdlog beside Debian's fmt
    set(spdlog_fmt "${CREPE_THIRD_PARTY_DIR}/fmt/include")
  elseif(TARGET fmt::fmt)  # an installed spdlog built on an external fmt (an upstream one bundles its own)
    get_target_property(fmt_dirs fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
    foreach(dir IN LISTS fmt_dirs)
      if(EXISTS "${dir}/fmt/core.h")
        set(spdlog_fmt "${dir}")
      endif()
    endforeach()
  endif()
  if(spdlog_fmt AND NOT "${spdlog_fmt}" STREQUAL "${torch_fmt}")
    set(CREPE_FMT_FIRST_DIR "${CMAKE_BINARY_DIR}/spdlog-fmt")
    file(MAKE_DIRECTORY "${CREPE_FMT_FIRST_DIR}")
    file(CREATE_LINK "${spdlog_fmt}/fmt" "${CREPE_FMT_FIRST_DIR}/fmt" SYMBOLIC)
    message(STATUS "fmt: ${spdlog_fmt}/fmt ahead of LibTorch's own (${torch_fmt}/fmt)")
  endif()
endif()

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
endif()
if(TARGET PkgConfig::PCRE2)
  add_library(crepe::pcre2 ALIAS PkgConfig::PCRE2)
else()
  find_path(PCRE2_INCLUDE pcre2.h HINTS "${CREPE_THIRD_PARTY_DIR}/pcre2/include")
  find_library(PCRE2_LIBRARY NAMES pcre2-8 libpcre2-8.so.0 HINTS "${CREPE_THIRD_PARTY_DIR}/pcre2/lib")
  if(NOT PCRE2_INCLUDE OR NOT PCRE2_LIBRARY)
    message(FATAL_ERROR "PCRE2 (libpcre2-8) not found: install libpcre2-dev or put it in CREPE_THIRD_PARTY_DIR/pcre2")
  endif()
  add_library(crepe::pcre2 INTERFACE IMPORTED GLOBAL)
  set_target_properties(crepe::pcre2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${PCRE2_INCLUDE}"
                                                INTERFACE_LINK_LIBRARIES "${PCRE2_LIBRARY}")
endif()

# GoogleTest: the installed package, else its source tree.
function(crepe_find_gtest)
  find_package(GTest QUIET)
  if(NOT TARGET GTest::gtest AND EXISTS "${CREPE_THIRD_PARTY_DIR}/googletest/CMakeLists.txt")
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory("${CREPE_THIRD_PARTY_DIR}/googletest" "${CMAKE_BINARY_DIR}/googletest" EXCLUDE_FROM_ALL)
    if(NOT TARGET GTest::gtest)  # GoogleTest 1.11+ defines these aliases itself
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
  endif()
  if(NOT TARGET GTest::gtest)
    message(FATAL_ERROR "GoogleTest not found: install libgtest-dev or put its source in CREPE_THIRD_PARTY_DIR/googletest")
  endif()
endfunction()
