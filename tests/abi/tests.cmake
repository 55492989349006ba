# Tests of the plugin ABI. They use include/moediffuse.h only and link the
# shared library; labelled "unit" so CI runs them under ASan + UBSan too.
if(NOT TARGET moediffuse)
  return()
endif()

set(MD_ABI_TEST_ENV "MD_SOURCE_DIR=${CMAKE_SOURCE_DIR};MD_GOLDEN_DIR=${MD_GOLDEN_DIR}")

foreach(name abi_basics abi_generate abi_cancel abi_moe abi_v1_2 abi_v1_3 abi_v1_4 abi_v1_5 abi_v1_6 abi_destroy
             abi_router_override)
  add_executable(${name} ${CMAKE_SOURCE_DIR}/tests/abi/${name}.c)
  target_compile_options(${name} PRIVATE ${MD_WARNINGS})
  target_link_libraries(${name} PRIVATE moediffuse Threads::Threads)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV};${MD_SANITIZER_ENV}"
                       LABELS "unit;abi")
endforeach()
# Generates from several threads and contexts at once: also run under
# ThreadSanitizer (label "threads", .ci/run).
set_tests_properties(abi_cancel abi_v1_3 abi_destroy PROPERTIES LABELS "unit;abi;threads")

# The router override on Vulkan (lavapipe on CI): an override routes on the
# host there. Skipped (77) without a Vulkan device.
if(MD_VULKAN)
  add_test(NAME abi_router_override_vulkan COMMAND abi_router_override vulkan)
  set_tests_properties(abi_router_override_vulkan PROPERTIES
                       ENVIRONMENT "${MD_ABI_TEST_ENV};MD_VK_VALIDATION=1;${MD_SANITIZER_ENV}"
                       LABELS "abi;vulkan" SKIP_RETURN_CODE 77)
endif()

# LoRAs on Vulkan (side products on the device; experts loaded on demand
# refuse a LoRA). Skipped (77) without a Vulkan device.
if(MD_VULKAN)
  add_test(NAME abi_v1_6_vulkan COMMAND abi_v1_6 vulkan)
  set_tests_properties(abi_v1_6_vulkan PROPERTIES
                       ENVIRONMENT "${MD_ABI_TEST_ENV};MD_VK_VALIDATION=1;${MD_SANITIZER_ENV}"
                       LABELS "abi;vulkan" SKIP_RETURN_CODE 77)
endif()

# Routing health (1.4): the test models are made by health.sh.
add_executable(abi_health ${CMAKE_SOURCE_DIR}/tests/abi/abi_health.c)
target_compile_options(abi_health PRIVATE ${MD_WARNINGS})
target_link_libraries(abi_health PRIVATE moediffuse)
add_test(NAME abi_health COMMAND bash ${CMAKE_SOURCE_DIR}/tests/abi/health.sh ${CMAKE_BINARY_DIR})
set_tests_properties(abi_health PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV};${MD_SANITIZER_ENV}"
                     LABELS "unit;abi")

# The same host source against the frozen 1.0 header and the current one.
# tests/abi_v1_0/moediffuse.h is ABI 1.0 as released: never edit it.
add_executable(abi-compat-v1_0 ${CMAKE_SOURCE_DIR}/tests/abi/compat_host.c)
target_include_directories(abi-compat-v1_0 BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/tests/abi_v1_0)
add_executable(abi-compat-current ${CMAKE_SOURCE_DIR}/tests/abi/compat_host.c)
foreach(t abi-compat-v1_0 abi-compat-current)
  target_compile_options(${t} PRIVATE ${MD_WARNINGS})
  target_link_libraries(${t} PRIVATE moediffuse)
endforeach()

foreach(script compat example_host paint_example)
  add_test(NAME abi_${script} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/abi/${script}.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(abi_${script} PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV};${MD_SANITIZER_ENV}"
                       LABELS "unit;abi")
endforeach()

# The installed product and the real editors, headless: not under the
# sanitizers (plain hosts load the library), skipped (77) where the editor
# is not installed.
add_executable(png-check ${CMAKE_SOURCE_DIR}/tests/abi/png_check.c)
target_compile_options(png-check PRIVATE ${MD_WARNINGS})
target_link_libraries(png-check PRIVATE PNG::PNG)
add_test(NAME abi_install COMMAND bash ${CMAKE_SOURCE_DIR}/tests/abi/install.sh ${CMAKE_BINARY_DIR})
set_tests_properties(abi_install PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV}" LABELS "plugins")
foreach(editor gimp krita)
  add_test(NAME plugin_${editor} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/abi/${editor}.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(plugin_${editor} PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV}"
    LABELS "plugins" SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()

# ABI 1.6: api->merge (SegMoE merges) on the golden merge case.
add_executable(abi_merge ${CMAKE_SOURCE_DIR}/tests/abi/abi_merge.c)
target_compile_options(abi_merge PRIVATE ${MD_WARNINGS})
target_link_libraries(abi_merge PRIVATE moediffuse Threads::Threads)
add_test(NAME abi_merge COMMAND abi_merge)
set_tests_properties(abi_merge PROPERTIES ENVIRONMENT "${MD_ABI_TEST_ENV};${MD_SANITIZER_ENV}"
                     LABELS "unit;abi")
