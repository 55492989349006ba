# libFuzzer targets (MD_FUZZ=ON, clang): one executable per parser of
# outside input, tests/fuzz/fuzz_<name>.c, seeded from corpus/<name>/.
# tools/fuzz.sh runs them; docs/robustness.md says what they cover.
if(TARGET moediffuse)
  # clang links the sanitizer runtimes into executables only, so the shared
  # library's references to them stay undefined until the fuzzer loads it:
  # lift its -z defs (--no-undefined) in this build alone.
  target_link_options(moediffuse PRIVATE -Wl,-z,undefs)
endif()

file(GLOB MD_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
set(MD_FUZZ_TARGETS)
foreach(src ${MD_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${MD_WARNINGS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE md_engine moediffuse_host moediffuse)
  list(APPEND MD_FUZZ_TARGETS ${name})
  # Every committed input (seeds and the regression inputs of past
  # findings) run once: a crash fixed stays fixed.
  string(REGEX REPLACE "^fuzz_" "" corpus ${name})
  add_test(NAME ${name}.corpus
           COMMAND ${name} -runs=0 -rss_limit_mb=2048 ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
  set_tests_properties(${name}.corpus PROPERTIES LABELS fuzz)
endforeach()
# The server's request parser, without the server's HTTP side.
if(TARGET fuzz_server_request)
  target_sources(fuzz_server_request PRIVATE ${CMAKE_SOURCE_DIR}/server/gen_request.c
    ${CMAKE_SOURCE_DIR}/server/base64.c)
endif()
add_custom_target(fuzz DEPENDS ${MD_FUZZ_TARGETS})
