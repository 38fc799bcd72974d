{#- Two-sided 95% Student-t quantile for `df` degrees of freedom: exact for df 1-4, a Cornish-Fisher
    expansion beyond (error under 0.002 from df 5 on), the normal 1.96 as df grows. -#}
{% macro t975(df_expr) -%}
{%- set df = '(' ~ df_expr ~ ')' -%}
case
    when {{ df }} is null or {{ df }} < 1 then null
    when {{ df }} = 1 then 12.706
    when {{ df }} = 2 then 4.303
    when {{ df }} = 3 then 3.182
    when {{ df }} = 4 then 2.776
    else 1.959964
        + (1.959964 ^ 3 + 1.959964) / (4 * {{ df }})
        + (5 * 1.959964 ^ 5 + 16 * 1.959964 ^ 3 + 3 * 1.959964) / (96 * {{ df }} ^ 2)
        + (3 * 1.959964 ^ 7 + 19 * 1.959964 ^ 5 + 17 * 1.959964 ^ 3 - 15 * 1.959964) / (384 * {{ df }} ^ 3)
end
{%- endmacro %}

{#- The two ends of a 95% t-interval as select items: estimate -/+ t975(df) * se, named `low` and `high`. -#}
{% macro t_bounds(estimate, se, df, low, high) -%}
({{ estimate }}) - {{ t975(df) }} * ({{ se }}) as {{ low }},
    ({{ estimate }}) + {{ t975(df) }} * ({{ se }}) as {{ high }}
{%- endmacro %}

{#- Welch-Satterthwaite degrees of freedom of a difference of two means (floored), from each group's variance
    of the values and its size. -#}
{% macro welch_df(var_a, n_a, var_b, n_b) -%}
floor((({{ var_a }}) / ({{ n_a }}) + ({{ var_b }}) / ({{ n_b }})) ^ 2
      / nullif((({{ var_a }}) / ({{ n_a }})) ^ 2 / (({{ n_a }}) - 1)
               + (({{ var_b }}) / ({{ n_b }})) ^ 2 / (({{ n_b }}) - 1), 0))
{%- endmacro %}
