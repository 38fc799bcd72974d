{#- Standard normal CDF through erf (Abramowitz & Stegun 7.1.26, absolute error under 1.5e-7). -#}
{% macro normal_cdf(z) -%}
(0.5 * (1 + sign({{ z }}) * (1 - (
    0.254829592 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2)))
    - 0.284496736 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 2
    + 1.421413741 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 3
    - 1.453152027 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 4
    + 1.061405429 * (1 / (1 + 0.3275911 * abs({{ z }}) / sqrt(2))) ^ 5
) * exp(-power({{ z }}, 2) / 2))))
{%- endmacro %}

{#- Student-t CDF: exact for 1-3 degrees of freedom, else the normal CDF of the Abramowitz & Stegun 26.7.8
    transformation z = t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df)) (two-sided 95% points within 0.004 from df 5). -#}
{% macro t_cdf(t, df) -%}
(case
    when ({{ df }}) = 1 then 0.5 + atan({{ t }}) / pi()
    when ({{ df }}) = 2 then 0.5 + ({{ t }}) / (2 * sqrt(2 + power({{ t }}, 2)))
    when ({{ df }}) = 3 then 0.5 + ((({{ t }}) / sqrt(3)) / (1 + power({{ t }}, 2) / 3) + atan(({{ t }}) / sqrt(3))) / pi()
    else {{ normal_cdf('(' ~ t ~ ') * (1 - 1 / (4 * (' ~ df ~ '))) / sqrt(1 + power(' ~ t ~ ', 2) / (2 * (' ~ df ~ ')))') }}
end)
{%- endmacro %}
